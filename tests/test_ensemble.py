"""Verifier ensembles: Pillow-exact box resampling, mean-cosine codes, round trips, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facespace.models.registry import load_model, save_model
from facespace.data.images import decode_face
from facespace.errors import FacespaceError
from facespace.models.base import to_tensor
from facespace.models.ensemble import LFW_BOX, ensemble_verifiers, resize_weights
from facespace.models.verifier import VerifierConfig, VerifierNet

CFG = VerifierConfig(size=16, channels=3, code_size=8, width=4, blocks=(1, 1), dropout=0.0)


def member(seed: int, crop, cfg: VerifierConfig = CFG) -> VerifierNet:
    torch.manual_seed(seed)
    m = VerifierNet(cfg).eval()
    m.checkpoint_info = {"extra": {"crop": list(crop) if isinstance(crop, tuple) else crop}}
    return m


@pytest.mark.parametrize("n_in,n_out,box", [(60, 16, (0, 60)), (60, 16, (7.5, 52.25)), (40, 24, (3, 37)),
                                            (20, 32, (2, 18)), (33, 33, (0, 33))])
def test_resize_weights_match_pillow(n_in, n_out, box):
    """The same weights as Pillow's resize(box=...): BOX when shrinking, BILINEAR when enlarging."""
    rng = np.random.default_rng(0)
    line = rng.random((n_in, n_in)).astype(np.float32)
    filt = Image.Resampling.BOX if (box[1] - box[0]) >= n_out else Image.Resampling.BILINEAR
    want = np.asarray(Image.fromarray(line, mode="F").resize((n_out, n_out), filt, box=(box[0], box[0], box[1], box[1])))
    w = resize_weights(box[0], box[1], n_in, n_out)
    assert np.allclose(w.sum(1), 1)
    np.testing.assert_allclose(w @ line @ w.T, want, atol=1e-5)


def test_member_cut_matches_loading_the_member_crop(tmp_path):
    """An ensemble image cut to a member's box equals the file loaded at that member's crop."""
    y, x = np.mgrid[0:250, 0:250] / 250.0
    # smooth structure at several scales, different per channel: a box cut in the wrong place shows
    img = np.stack([np.sin(7 * x + 3 * y), np.cos(11 * y) * x, np.sin(5 * x * y + 9 * x)], -1)
    img = ((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)
    path = tmp_path / "face.png"
    Image.fromarray(img).save(path)
    ens = ensemble_verifiers([member(0, (70, 65, 190, 185)), member(1, "lfw")], size=96)
    union, _ = decode_face(path, 96, crop=ens.crop)
    cuts = ens.member_inputs(to_tensor(union[None].astype(np.float32) / 255))
    direct = [decode_face(path, 16, crop=crop)[0] / 255 for crop in [(70, 65, 190, 185), "lfw"]]
    got = [cut[0].permute(1, 2, 0).numpy() for cut in cuts]
    for k in range(2):
        # two resamplings (file -> union -> member) against one: close, not equal
        assert np.abs(got[k] - direct[k]).mean() < 0.01
        # and far from the other member's box
        assert np.abs(got[k] - direct[1 - k]).mean() > 0.05


def test_codes_are_unit_and_cosine_is_the_mean_of_the_members():
    a, b = member(0, (70, 65, 190, 185)), member(1, (50, 45, 210, 205))
    ens = ensemble_verifiers([a, b], size=32)
    assert ens.crop == (50, 45, 210, 205) and ens.code_size == 16
    x = np.random.default_rng(2).random((6, 32, 32, 3)).astype(np.float32)
    z = ens.encode(x)
    assert z.shape == (6, 16) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    cuts = ens.member_inputs(to_tensor(x))
    with torch.no_grad():
        za, zb = (m.encode_tensor(c).numpy() for m, c in zip((a, b), cuts))
    want = ((za[:3] * za[3:]).sum(1) + (zb[:3] * zb[3:]).sum(1)) / 2
    np.testing.assert_allclose((z[:3] * z[3:]).sum(1), want, atol=1e-5)


def test_one_member_on_its_own_box_is_that_member():
    m = member(3, (70, 65, 190, 185))
    ens = ensemble_verifiers([m], size=16)  # the union is the member's box at its own size: no resampling
    x = np.random.default_rng(3).random((4, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(ens.encode(x), m.encode(x), atol=1e-5)


def test_save_load_round_trip(tmp_path):
    ens = ensemble_verifiers([member(0, "lfw"), member(1, (50, 45, 210, 205), VerifierConfig(
        size=32, channels=3, code_size=4, width=4, blocks=(1, 1, 1), shift_test=2))], size=40)
    path = save_model(ens, tmp_path / "ens.safetensors")
    back = load_model(path, kind="ensemble")
    x = np.random.default_rng(4).random((3, 40, 40, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.encode(x), ens.encode(x))
    assert back.crop == ens.crop and back.config.boxes[0] == pytest.approx(
        [(LFW_BOX[0] - 50) / 160, (LFW_BOX[1] - 45) / 160, (LFW_BOX[2] - 50) / 160, (LFW_BOX[3] - 45) / 160])


def test_bad_members_are_refused():
    with pytest.raises(FacespaceError, match="at least one"):
        ensemble_verifiers([])
    with pytest.raises(FacespaceError, match="pixel box"):
        ensemble_verifiers([member(0, None)])
    with pytest.raises(FacespaceError, match="one crop per model"):
        ensemble_verifiers([member(0, "lfw")], crops=["lfw", "tight"])
    grey = member(1, "lfw", VerifierConfig(size=16, channels=1, code_size=8, width=4, blocks=(1, 1)))
    with pytest.raises(FacespaceError, match="all be colour or all grey"):
        ensemble_verifiers([member(0, "lfw"), grey])
    with pytest.raises(FacespaceError, match="must be verifiers"):
        ensemble_verifiers([ensemble_verifiers([member(0, "lfw")])])
    ens = ensemble_verifiers([member(0, "lfw")], size=24)
    with pytest.raises(FacespaceError, match="model takes"):
        ens.encode(np.zeros((1, 16, 16, 3), np.float32))


def test_retraining_needs_the_members_crops():
    from facespace.models.ensemble import VerifierEnsemble
    from facespace.training.verifier import ensemble_retrainer

    built = ensemble_verifiers([member(0, "lfw"), member(1, (50, 45, 210, 205))], size=32)
    assert len(built.checkpoint_info["extra"]["members"]) == 2
    ensemble_retrainer(built)  # recorded by ensemble_verifiers: accepted
    bare = VerifierEnsemble(built.config)  # a network with no record of its members' crops
    with pytest.raises(FacespaceError, match="rebuild it with `facespace models ensemble`"):
        ensemble_retrainer(bare)
