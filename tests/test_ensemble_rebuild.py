"""benchmarks/ensemble_rebuild.py: recipes that retrain as asked, folds split over lanes, bad members refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ensemble_rebuild  # noqa: E402


def test_a_recipe_retrains_with_its_network_loop_and_crop(tmp_path, monkeypatch):
    import facespace.training.verifier as vt
    from facespace.models.registry import load_model
    from facespace.data.crops import TIGHT_BOX
    from facespace.data.faceset import FaceSet

    path = ensemble_rebuild.write_recipe(tmp_path / "wide.safetensors", "wide", 7, bf16=True)
    got = {}
    monkeypatch.setattr(vt, "train_verifier", lambda faces, **kw: got.update(kw) or "trained")
    faces = FaceSet(np.zeros((2, 48, 48, 3), np.float32), np.array(["a", "b"]), ["a/1.jpg", "b/1.jpg"], "test")
    assert vt.retrainer(load_model(path, kind="verifier"))(faces) == "trained"
    config, loop = got["model"], got["loop"]
    assert (config.size, config.width, config.dropout, config.shift_test) == (48, 16, 0.5, 2)
    assert loop.epochs == 7 and loop.bf16 and loop.channels_last and loop.threads == 1
    assert list(got["crop"]) == [50, 45, 210, 205]
    big = ensemble_rebuild.write_recipe(tmp_path / "big.safetensors", "64px", 3, bf16=False)
    vt.retrainer(load_model(big, kind="verifier"))(faces)
    assert got["model"].size == 64 and got["model"].width == 12 and not got["loop"].bf16
    assert list(got["crop"]) == list(TIGHT_BOX)


def test_dry_run_splits_the_folds_over_the_lanes_member_after_member(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["ensemble_rebuild.py", "--members", "tight:24", "inner:48", "--lanes", "3",
                                      "--runs", str(tmp_path), "--dry-run"])
    ensemble_rebuild.main()
    out = capsys.readouterr().out.splitlines()
    lanes = [line.split("--folds ")[1].split()[0] for line in out if "--train-only" in line]
    assert lanes == ["1,4,7,10", "1,4,7,10", "2,5,8", "2,5,8", "3,6,9", "3,6,9"]
    assert "tight-e24.safetensors" in out[1] and "inner-e48.safetensors" in out[2]
    assert out[-1].endswith(f"--fold-models {tmp_path}/folds-tight-e24 {tmp_path}/folds-inner-e48 --merge")
    assert not list(tmp_path.iterdir())  # a dry run writes nothing


@pytest.mark.parametrize("spec", ["face:24", "tight", "tight:0", "tight:x"])
def test_an_unknown_member_is_refused_with_the_recipes_named(spec):
    with pytest.raises(SystemExit, match="expected RECIPE:EPOCHS with RECIPE one of tight, 64px, wide, inner"):
        ensemble_rebuild.parse_member(spec)
