"""The identity verifier: network, margin losses, augmentation and identity training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facespace.data.augment import NO_CHANGE, AugmentConfig, augment, augment_spec, flip_images, parse_augment
from facespace.models.registry import load_model, save_model
from facespace.data.faceset import FaceSet
from facespace.errors import FacespaceError
from facespace.training.metric_losses import MarginSoftmax, contrastive_loss, margin_logits, triplet_loss
from facespace.models.verifier import VerifierConfig, VerifierNet, shift_image
from facespace.training.verifier import IdentityObjective, ObjectiveConfig, identity_dataset, identity_split

TINY = VerifierConfig(size=16, channels=1, code_size=8, width=4, blocks=(1, 1), dropout=0.0)


def synthetic_people(n_people=4, per_person=8, size=16, seed=0) -> FaceSet:
    """Each 'person' is a fixed random pattern; their images are it plus noise."""
    rng = np.random.default_rng(seed)
    protos = rng.random((n_people, size, size, 1)).astype(np.float32)
    images = np.clip(protos.repeat(per_person, 0) + rng.normal(0, 0.1, (n_people * per_person, size, size, 1)), 0, 1)
    names = np.array([f"p{i}" for i in range(n_people) for _ in range(per_person)])
    paths = np.array([f"{n}/{j}.png" for j, n in enumerate(names)])
    return FaceSet(images.astype(np.float32), names, paths, source="synthetic")


@pytest.fixture(scope="module")
def faces() -> FaceSet:
    return synthetic_people()


# --- network ---------------------------------------------------------------------------------


def test_encode_shapes_and_unit_norm(rng):
    torch.manual_seed(0)
    model = VerifierNet(VerifierConfig(size=32, channels=3, code_size=16, width=4, blocks=(1, 1, 1)))
    codes = model.encode(rng.random((5, 32, 32, 3)).astype(np.float32))
    assert codes.shape == (5, 16) and codes.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, atol=1e-5)
    assert model.image_shape == (32, 32, 3) and model.code_size == 16


def test_flip_test_embedding_ignores_mirroring(rng):
    torch.manual_seed(0)
    model = VerifierNet(TINY).eval()
    x = rng.random((3, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(model.encode(x), model.encode(x[:, :, ::-1]), atol=1e-5)
    plain = VerifierNet(VerifierConfig(**{**TINY.__dict__, "flip_test": False})).eval()
    assert not np.allclose(plain.encode(x), plain.encode(x[:, :, ::-1]), atol=1e-3)


def test_shift_image_known_answer_and_shift_test():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    right = shift_image(x, 1, 0)[0, 0]  # one pixel right: the first column repeats
    np.testing.assert_array_equal(right.numpy(), [[0, 0, 1, 2], [4, 4, 5, 6], [8, 8, 9, 10], [12, 12, 13, 14]])
    np.testing.assert_array_equal(shift_image(x, 0, -1)[0, 0, :, 0].numpy(), [4, 8, 12, 12])
    torch.manual_seed(0)
    plain = VerifierNet(TINY).eval()
    shifted = VerifierNet(dataclasses.replace(TINY, shift_test=2)).eval()
    shifted.load_state_dict(plain.state_dict())
    flat = np.full((2, 16, 16, 1), 0.3, np.float32)  # shifting a flat image changes nothing
    np.testing.assert_allclose(shifted.encode(flat), plain.encode(flat), atol=1e-5)
    x = np.random.default_rng(0).random((3, 16, 16, 1)).astype(np.float32)
    codes = shifted.encode(x)
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(codes, plain.encode(x), atol=1e-4)
    with pytest.raises(FacespaceError, match="shift_test"):
        dataclasses.replace(TINY, shift_test=4)


def test_save_load_gives_identical_embeddings(tmp_path, rng):
    torch.manual_seed(1)
    model = VerifierNet(TINY)
    model.train()
    model.embed(torch.rand(8, 1, 16, 16))  # move the BN running statistics off their defaults
    model.eval()
    path = save_model(model, tmp_path / "v.safetensors", extra={"note": "x"})
    back = load_model(path, kind="verifier")
    x = rng.random((4, 16, 16, 1)).astype(np.float32)
    np.testing.assert_array_equal(model.encode(x), back.encode(x))
    assert back.config == TINY and back.checkpoint_info["extra"] == {"note": "x"}


def test_bad_config_and_input_raise():
    with pytest.raises(FacespaceError, match="divisible"):
        VerifierConfig(size=20, blocks=(1, 1, 1))
    with pytest.raises(FacespaceError, match="channels"):
        VerifierConfig(channels=2)
    with pytest.raises(FacespaceError, match="model takes"):
        VerifierNet(TINY).encode(np.zeros((1, 32, 32, 1), np.float32))


# --- losses ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cosface", "arcface"])
def test_zero_margin_is_softmax_on_scaled_cosines(kind):
    torch.manual_seed(0)
    head = MarginSoftmax(6, 5, margin=0.0, scale=16.0, kind=kind)
    z, y = torch.randn(7, 6), torch.randint(0, 5, (7,))
    loss, _ = head(z, y)
    cos = F.normalize(z, dim=1) @ F.normalize(head.weight, dim=1).T
    torch.testing.assert_close(loss, F.cross_entropy(16.0 * cos, y))


def test_margins_change_only_the_true_class():
    cos = torch.tensor([[0.5, 0.2, -0.1]])
    y = torch.tensor([0])
    cosface = margin_logits(cos, y, margin=0.3, scale=10.0, kind="cosface")
    torch.testing.assert_close(cosface, torch.tensor([[2.0, 2.0, -1.0]]))
    arcface = margin_logits(cos, y, margin=0.3, scale=10.0, kind="arcface")
    expected = 10 * torch.cos(torch.acos(torch.tensor(0.5)) + 0.3)
    torch.testing.assert_close(arcface[0, 0], expected)
    torch.testing.assert_close(arcface[0, 1:], torch.tensor([2.0, -1.0]))
    with pytest.raises(FacespaceError, match="cosface"):
        margin_logits(cos, y, margin=0.3, scale=10.0, kind="sphere")


def test_contrastive_and_triplet_known_answers():
    a, b, c = [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]
    z, y = torch.tensor([a, b, c]), torch.tensor([0, 0, 1])
    # Distances: d(a,b) = 0.4, d(a,c) = 1.0, d(b,c) = 0.2.
    # Contrastive (margin 1.5), 6 ordered pairs: 2 x 0.4² + 2 x 0.5² + 2 x 1.3² over 6.
    expected = (2 * 0.16 + 2 * 0.25 + 2 * 1.69) / 6
    torch.testing.assert_close(contrastive_loss(z, y, margin=1.5), torch.tensor(expected))
    # Triplet (margin 0.2): anchor a: 0.4 - 1.0 + 0.2 < 0 -> 0; anchor b: 0.4 - 0.2 + 0.2 = 0.4; c has no positive.
    torch.testing.assert_close(triplet_loss(z, y, margin=0.2), torch.tensor(0.2))
    with pytest.raises(FacespaceError, match="two images"):
        triplet_loss(z, torch.tensor([0, 1, 2]))


# --- augmentation ----------------------------------------------------------------------------


def test_augment_shape_range_and_seed():
    x = torch.rand(6, 3, 20, 20)
    y1, y2 = augment(x, seed=3), augment(x, seed=3)
    assert y1.shape == x.shape and y1.dtype == x.dtype
    assert float(y1.min()) >= 0 and float(y1.max()) <= 1
    torch.testing.assert_close(y1, y2)
    assert not torch.allclose(y1, augment(x, seed=4))
    assert not torch.allclose(y1, x)


def test_augment_known_answers():
    x = torch.rand(4, 1, 12, 12)
    torch.testing.assert_close(augment(x, NO_CHANGE, seed=0), x, atol=1e-5, rtol=0)
    mirror = dataclasses.replace(NO_CHANGE, flip=1.0)
    torch.testing.assert_close(augment(x, mirror, seed=0), flip_images(x), atol=1e-5, rtol=0)
    with pytest.raises(FacespaceError, match="scale"):
        AugmentConfig(min_scale=1.2, max_scale=1.0)
    with pytest.raises(FacespaceError, match="B, C, H, W"):
        augment(torch.rand(12, 12))


def test_augment_share_leaves_the_other_images_exactly_as_they_were():
    x = torch.rand(400, 1, 8, 8)
    mirror_all = dataclasses.replace(NO_CHANGE, flip=1.0, share=0.25)
    y = augment(x, mirror_all, seed=0)
    kept = (y == x).all(dim=(1, 2, 3))
    mirrored = torch.isclose(y, flip_images(x), atol=1e-5).all(dim=(1, 2, 3))
    assert bool((kept | mirrored).all())  # every image either untouched (bit for bit) or changed as configured
    assert 0.65 < float(kept.float().mean()) < 0.85  # about 1 - share of them untouched
    torch.testing.assert_close(augment(x, dataclasses.replace(mirror_all, share=0.0), seed=0), x, atol=0, rtol=0)
    with pytest.raises(FacespaceError, match="share is a probability"):
        AugmentConfig(share=1.5)


def test_augment_grey_gives_the_luma_of_grey_files_in_every_channel():
    x = torch.rand(300, 3, 6, 6)
    y = augment(x, dataclasses.replace(NO_CHANGE, grey=0.5), seed=1)
    luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(x)
    turned = torch.isclose(y, luma, atol=1e-5).all(dim=(1, 2, 3))
    kept = torch.isclose(y, x, atol=1e-5).all(dim=(1, 2, 3))
    assert bool((turned | kept).all()) and 0.35 < float(turned.float().mean()) < 0.65
    one = torch.rand(4, 1, 6, 6)  # grey batches stay as they are
    torch.testing.assert_close(augment(one, dataclasses.replace(NO_CHANGE, grey=1.0), seed=0), one, atol=1e-5, rtol=0)
    with pytest.raises(FacespaceError, match="grey is a probability"):
        AugmentConfig(grey=2.0)


def test_parse_augment_reads_what_augment_spec_writes_and_names_bad_fields():
    config = parse_augment("max_shift=0.04, max_rotation=5,share=0.5")
    assert (config.max_shift, config.max_rotation, config.share) == (0.04, 5.0, 0.5)
    assert config.min_scale == AugmentConfig().min_scale  # fields not named keep their defaults
    assert parse_augment(augment_spec(config)) == config
    assert parse_augment("none") is None and parse_augment(None) is None and augment_spec(None) == "none"
    assert parse_augment("default") == AugmentConfig()
    with pytest.raises(FacespaceError, match="unknown augmentation 'shift'.*max_shift"):
        parse_augment("shift=0.1")
    with pytest.raises(FacespaceError, match="'max_rotation' needs a number"):
        parse_augment("max_rotation=lots")


# --- identity training -----------------------------------------------------------------------


def test_identity_split(faces):
    uneven = faces.subset(np.r_[0:8, 8:16, 16:17])  # p0 x8, p1 x8, p2 x1
    cfg = ObjectiveConfig(min_images=2, max_images=5, val_min_images=6)
    tr, va, labels, people = identity_split(uneven, cfg, seed=0)
    assert people == ["p0", "p1"] and labels[-1] == -1
    assert len(va) == 2 and len(tr) == 10 and not set(tr) & set(va)
    assert set(uneven.names[va]) == {"p0", "p1"}
    with pytest.raises(FacespaceError, match="name per image"):
        identity_split(FaceSet(faces.images, None, faces.paths))
    with pytest.raises(FacespaceError, match="at least 2"):
        identity_split(uneven, ObjectiveConfig(min_images=9))


def test_margin_training_separates_people(faces):
    torch.manual_seed(0)
    tr, _, labels, people = identity_split(faces, ObjectiveConfig(val_min_images=99))
    data = identity_dataset(faces, tr, labels)
    objective = IdentityObjective(VerifierNet(TINY), len(people), ObjectiveConfig(margin=0.2, scale=10.0))
    opt = torch.optim.Adam(objective.parameters(), lr=1e-2)
    batch = data.tensors
    objective.eval()
    with torch.no_grad():
        before = float(objective.loss(batch)[0])
    objective.train()
    for _ in range(40):
        loss, metrics = objective.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    objective.eval()
    with torch.no_grad():
        after = float(objective.loss(batch)[0])
    assert after < 0.5 * before
    z = objective.network.encode(faces.images)
    d = 1 - z @ z.T
    same = faces.names[:, None] == faces.names[None, :]
    assert d[same].mean() < d[~same].mean() - 0.2


def test_train_verifier_with_the_loop(faces, tmp_path):
    pytest.importorskip("facespace.training.loop")
    from facespace.training.loop import TrainConfig
    from facespace.training.verifier import train_verifier

    loop = TrainConfig(epochs=2, batch_size=8, lr=1e-2, seed=0)
    model = train_verifier(faces, model=TINY, objective=ObjectiveConfig(val_min_images=4), loop=loop,
                           out=tmp_path / "run", progress=False)
    codes = model.encode(faces.images)
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, atol=1e-5)
    back = load_model(tmp_path / "run", kind="verifier")
    assert back.checkpoint_info["extra"]["trained_people"] == 4
    with pytest.raises(FacespaceError, match="size=32"):
        train_verifier(faces, model=VerifierConfig(size=32), loop=loop)


def test_retrainer_rebuilds_the_settings(faces):
    pytest.importorskip("facespace.training.loop")
    from facespace.training.loop import TrainConfig
    from facespace.training.verifier import retrainer

    model = VerifierNet(TINY)
    loop = TrainConfig(epochs=1, batch_size=16, lr=1e-2, seed=0)
    objective = ObjectiveConfig(margin=0.1, val_min_images=99, augment=AugmentConfig(max_rotation=3.0))
    model.checkpoint_info = {"extra": {"objective": dataclasses.asdict(objective), "loop": dataclasses.asdict(loop)}}
    again = retrainer(model)(faces)
    assert again.config == TINY and again is not model
    assert again.checkpoint_info["extra"]["loop"]["epochs"] == 1
    longer = retrainer(model, epochs=2)(faces)
    assert longer.checkpoint_info["extra"]["loop"]["epochs"] == 2
    assert again.checkpoint_info["extra"]["objective"] == dataclasses.asdict(objective)
