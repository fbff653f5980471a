"""benchmarks/fold_models.py: per-fold verifiers kept by the people they trained on, and replayed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facespace.data.faceset import FaceSet
from facespace.errors import FacespaceError
from facespace.models.verifier import VerifierConfig, VerifierNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fold_models  # noqa: E402


def faces_of(names: list[str]) -> FaceSet:
    images = np.random.default_rng(0).random((len(names), 16, 16, 1)).astype(np.float32)
    return FaceSet(images, np.array(names), [f"{n}/{i}.jpg" for i, n in enumerate(names)], "test")


def test_kept_models_come_back_only_for_the_same_people(tmp_path):
    torch.manual_seed(0)
    net = VerifierNet(VerifierConfig(size=16, channels=1, code_size=8, width=4, blocks=(1, 1))).eval()
    trained = []

    def train_fn(faces):
        trained.append(len(faces))
        return net

    fold_a, fold_b = faces_of(["ann", "bob", "ann"]), faces_of(["bob", "cy"])
    assert fold_models.people_key(fold_a) == fold_models.people_key(faces_of(["bob", "ann"]))  # people, not images
    assert fold_models.people_key(fold_a) != fold_models.people_key(fold_b)
    fold_models.saving(train_fn, tmp_path)(fold_a)
    assert trained == [3] and len(list(tmp_path.glob("*.safetensors"))) == 1
    back = fold_models.replay(tmp_path)(fold_a)
    np.testing.assert_array_equal(back.encode(fold_a.images), net.encode(fold_a.images))
    shifted = fold_models.replay(tmp_path, shift_test=2)(fold_a)
    assert shifted.config.shift_test == 2 and not np.allclose(shifted.encode(fold_a.images), net.encode(fold_a.images))
    with pytest.raises(FacespaceError, match="no model trained on exactly these 2 people"):
        fold_models.replay(tmp_path)(fold_b)
    assert fold_models.settings(tmp_path)["size"] == 16
    with pytest.raises(FacespaceError, match="no kept fold models"):
        fold_models.settings(tmp_path / "empty")


def test_kept_models_of_several_folders_replay_as_one_ensemble(tmp_path):
    torch.manual_seed(1)
    faces = faces_of(["ann", "bob", "ann"])
    nets = []
    for folder, crop in (("tight", [70, 65, 190, 185]), ("wide", [50, 45, 210, 205])):
        net = VerifierNet(VerifierConfig(size=16, channels=1, code_size=8, width=4, blocks=(1, 1))).eval()
        net.checkpoint_info = {"extra": {"crop": crop}}
        fold_models.saving(lambda f, net=net: net, tmp_path / folder)(faces)
        nets.append(net)
    folders = [tmp_path / "tight", tmp_path / "wide"]
    kw = fold_models.ensemble_settings(folders, size=32)
    assert kw["size"] == 32 and kw["crop"] == (50, 45, 210, 205) and "crop tight" in kw["input"]
    ens = fold_models.replay_ensemble(folders, size=32)(faces)
    x = np.random.default_rng(5).random((4, 32, 32, 1)).astype(np.float32)
    cuts = ens.member_inputs(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    with torch.no_grad():
        want = torch.cat([n.encode_tensor(c) for n, c in zip(nets, cuts)], 1).numpy() / np.sqrt(2)
    np.testing.assert_allclose(ens.encode(x), want, atol=1e-5)
    with pytest.raises(FacespaceError, match="no model trained on exactly these"):
        fold_models.replay_ensemble(folders, size=32)(faces_of(["cy"]))
