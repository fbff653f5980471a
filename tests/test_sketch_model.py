import math

import numpy as np
import pytest
import torch

from facespace.models.registry import load_model, save_model
from facespace.data.sketch_synth import make_face_sketches
from facespace.data.strokes import check_stroke3, collate_strokes
from facespace.errors import DataError, FacespaceError
from facespace.models.sketch_ae import SketchAE, SketchAEConfig, _mdn_nll
from facespace.pipelines.sketches import cluster_purity, cluster_sketches, train_sketches, write_cluster_gallery

TINY = dict(enc_hidden=16, dec_hidden=32, code_size=12, max_len=80)


@pytest.fixture(scope="module")
def faces():
    return make_face_sketches(64, seed=11)


@pytest.fixture(scope="module")
def trained(faces):
    return train_sketches(faces, epochs=3, batch_size=16, lr=5e-3, seed=3, progress=False, **TINY)


def untrained(faces, **options):
    torch.manual_seed(3)  # train_sketches seeds the same way: identical initial weights
    return SketchAE(SketchAEConfig(**{**TINY, **options})).fit_scale(faces.strokes)


def test_training_lowers_the_loss(trained, faces):
    before, after = untrained(faces).evaluate(faces), trained.evaluate(faces)
    assert after["loss"] < 0.85 * before["loss"]
    assert after["pen"] < before["pen"] and after["offsets"] < before["offsets"]


def test_codes_ignore_size_with_fit_box(trained, faces):
    z = trained.encode(faces)
    assert z.shape == (len(faces), 12) and z.dtype == np.float32
    bigger = [s * np.array([3, 3, 1], np.float32) for s in faces.strokes[:5]]
    np.testing.assert_allclose(trained.encode(bigger), z[:5], atol=1e-5)
    raw = untrained(faces, fit_box=False)
    assert not np.allclose(raw.encode(bigger), raw.encode(faces.strokes[:5]), atol=1e-3)


def test_codes_do_not_depend_on_batch_companions(trained, faces):
    short = min(faces.strokes, key=len)
    long = max(faces.strokes, key=len)
    alone = trained.encode([short])
    padded = trained.encode([short, long, long])  # same batch: the short one is padded
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)


def test_save_load_round_trip(trained, faces, tmp_path):
    path = save_model(trained, tmp_path / "sketch.safetensors")
    back = load_model(path, kind="sketch")
    assert back.config == trained.config and float(back.scale) == float(trained.scale)
    np.testing.assert_array_equal(back.encode(faces.strokes[:8]), trained.encode(faces.strokes[:8]))
    a, b = back.reconstruct(faces.strokes[:3]), trained.reconstruct(faces.strokes[:3])
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_free_running_decode(trained, faces):
    z = trained.encode(faces.strokes[:4])
    out = trained.decode(z)
    assert len(out) == 4
    for s in out:
        check_stroke3(s) if len(s) else None
        assert s.dtype == np.float32 and s.shape[1] == 3 and len(s) <= 80
    assert all(len(s) <= 5 for s in trained.decode(z, max_len=5))
    a = trained.decode(z, temperature=0.5, seed=1)
    b = trained.decode(z, temperature=0.5, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(FacespaceError, match=r"codes must be \(n, 12\)"):
        trained.decode(np.zeros((2, 5), np.float32))


def test_mdn_known_answer_and_variants(faces):
    # one standard Gaussian at the origin, target at the origin: NLL = log(2 pi)
    out = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    assert float(_mdn_nll(out, torch.zeros(1, 2), 1)) == pytest.approx(math.log(2 * math.pi), rel=1e-6)
    out[0, 1] = 1.0  # mean moved to x = 1: NLL grows by 1/2
    assert float(_mdn_nll(out, torch.zeros(1, 2), 1)) == pytest.approx(math.log(2 * math.pi) + 0.5, rel=1e-6)
    batch = collate_strokes(untrained(faces).prepare(faces.strokes[:6]))
    for options in (dict(output="mdn", n_mixtures=3), dict(cell="lstm", readout="last", bidirectional=False)):
        model = untrained(faces, **options)
        loss, metrics = model.loss(batch)
        loss.backward()
        assert torch.isfinite(loss) and set(metrics) == {"offsets", "pen"}
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        assert len(model.decode(model.encode(faces.strokes[:2]), max_len=6)) == 2


def test_bad_input_messages(trained, faces):
    with pytest.raises(FacespaceError, match="unknown cell 'rnn'"):
        SketchAEConfig(cell="rnn")
    with pytest.raises(FacespaceError, match="unknown output"):
        SketchAEConfig(output="l1")
    with pytest.raises(DataError, match="sketch 1 is an empty drawing"):
        trained.encode([faces.strokes[0], np.zeros((0, 3), np.float32)])
    with pytest.raises(FacespaceError, match="unknown sketch model option"):
        train_sketches(faces, epochs=1, hidden=3)
    with pytest.raises(FacespaceError, match="longer than max_len=3"):
        train_sketches(faces, epochs=1, max_len=3)


def test_clustering_helpers(tmp_path, rng, faces):
    assert cluster_purity([0, 0, 1, 1, 2], [0, 0, 0, 1, -1]) == pytest.approx(3 / 4)
    assert cluster_purity([0, 1], [-1, -1]) == 0.0
    centres = rng.normal(0, 10, (3, 6))
    codes = np.concatenate([c + rng.normal(0, 0.3, (20, 6)) for c in centres]).astype(np.float32)
    truth = np.repeat([0, 1, 2], 20)
    for method in ("dbscan", "hdbscan"):
        labels = cluster_sketches(codes, method, min_cluster_size=5)
        assert labels.max() + 1 == 3 and cluster_purity(truth, labels) == 1.0
    with pytest.raises(FacespaceError, match="unknown clustering method"):
        cluster_sketches(codes, "kmeans")
    labels = np.array([0] * 3 + [1] * 2 + [-1])
    paths = write_cluster_gallery(faces.strokes[:6], labels, tmp_path / "gal")
    assert [p.name for p in paths] == ["cluster_000.png", "cluster_001.png", "noise.png"]
    with pytest.raises(FacespaceError, match="6 labels for 5 sketches"):
        write_cluster_gallery(faces.strokes[:5], labels, tmp_path / "gal")
