"""facespace.people.fold_models: per-fold verifiers kept by the people they trained on, and replayed."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from facespace.data.faceset import FaceSet
from facespace.errors import FacespaceError
from facespace.models.verifier import VerifierConfig, VerifierNet

from facespace.people import fold_models


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
    ens = fold_models.replay_ensemble(folders, size=32, cache=False)(faces)
    x = np.random.default_rng(5).random((4, 32, 32, 1)).astype(np.float32)
    cuts = ens.member_inputs(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    with torch.no_grad():
        want = torch.cat([n.encode_tensor(c) for n, c in zip(nets, cuts)], 1).numpy() / np.sqrt(2)
    np.testing.assert_allclose(ens.encode(x), want, atol=1e-5)
    with pytest.raises(FacespaceError, match="no model trained on exactly these"):
        fold_models.replay_ensemble(folders, size=32)(faces_of(["cy"]))


def test_an_ensemble_replay_keeps_member_codes_and_reuses_them(tmp_path, monkeypatch):
    torch.manual_seed(2)
    faces = faces_of(["ann", "bob", "ann"])
    folders = []
    for folder, crop in (("tight", [70, 65, 190, 185]), ("wide", [50, 45, 210, 205]), ("inner", [80, 80, 170, 170])):
        net = VerifierNet(VerifierConfig(size=16, channels=1, code_size=8, width=4, blocks=(1, 1))).eval()
        net.checkpoint_info = {"extra": {"crop": crop}}
        fold_models.saving(lambda f, net=net: net, tmp_path / folder)(faces)
        folders.append(tmp_path / folder)
    x = np.random.default_rng(6).random((5, 32, 32, 1)).astype(np.float32)
    plain = fold_models.replay_ensemble(folders[:2], size=32, shift_test=1, cache=False)(faces)
    cached = fold_models.replay_ensemble(folders[:2], size=32, shift_test=1)(faces)
    first = cached.encode(x)
    np.testing.assert_allclose(first, plain.encode(x), atol=1e-6)  # the ensemble's own codes
    assert all(len(list((f / "codes").glob("*-shift1-*.npy"))) == 1 for f in folders[:2])
    # read back, not recomputed: a member that can no longer encode is not asked to
    again = fold_models.replay_ensemble(folders[:2], size=32, shift_test=1)(faces)
    monkeypatch.setattr(VerifierNet, "encode_tensor", lambda *a: (_ for _ in ()).throw(AssertionError("recomputed")))
    np.testing.assert_array_equal(again.encode(x), first)
    with pytest.raises(AssertionError, match="recomputed"):  # other images are new work
        again.encode(x[:3])
    with pytest.raises(AssertionError, match="recomputed"):  # another shift is another code
        fold_models.replay_ensemble(folders[:2], size=32, shift_test=0)(faces).encode(x)
    monkeypatch.undo()
    # one more member (whose box lies inside the union): only it is encoded, the others are read back
    three = fold_models.replay_ensemble(folders, size=32, shift_test=1)(faces)
    np.testing.assert_allclose(three.encode(x), fold_models.replay_ensemble(folders, size=32, shift_test=1,
                                                                           cache=False)(faces).encode(x), atol=1e-6)
    assert len(list((folders[0] / "codes").glob("*.npy"))) == 1 and not list(tmp_path.rglob("*.part"))


def test_train_only_trains_each_tested_fold_on_the_people_evaluate_lfw_would_and_scores_nothing(tmp_path):
    """train_folds (verification.py --train-only): the same training sets as the protocol (so the kept models replay)."""
    from people_helpers import write_people

    write_people(tmp_path / "lfw", 9, 3, ext=".jpg")
    lines = ["3\t1"] + [f"P{3 * f:02d}\t1\t2\nP{3 * f + 1:02d}\t1\tP{3 * f + 2:02d}\t1" for f in range(3)]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    seen = []
    kw = {"keep_dir": tmp_path / "kept", "size": 16, "crop": "lfw", "grayscale": False, "held_out": True}
    fold_models.train_folds([tmp_path / "pairs.txt"], tmp_path / "lfw", lambda faces: seen.append(set(faces.names.tolist())),
                            folds="1,3", **kw)
    # fold 1 trains without folds 1 and 2 (held out), fold 3 without folds 3 and 1 (the next, wrapping round)
    assert seen == [{"P06", "P07", "P08"}, {"P03", "P04", "P05"}]
    with pytest.raises(FacespaceError, match="no fold 4"):
        fold_models.train_folds([tmp_path / "pairs.txt"], tmp_path / "lfw", seen.append, folds="4", **kw)


def test_train_only_run_again_trains_only_the_folds_not_yet_kept(tmp_path):
    """An interrupted --train-only run started again skips folds whose model is in the folder (same people)."""
    from people_helpers import write_people

    write_people(tmp_path / "lfw", 9, 3, ext=".jpg")
    lines = ["3\t1"] + [f"P{3 * f:02d}\t1\t2\nP{3 * f + 1:02d}\t1\tP{3 * f + 2:02d}\t1" for f in range(3)]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    kept = tmp_path / "kept"
    torch.manual_seed(0)
    net = VerifierNet(VerifierConfig(size=16, channels=3, code_size=8, width=4, blocks=(1, 1))).eval()
    seen = []

    def train_fn(faces):
        seen.append(set(faces.names.tolist()))
        return net

    kw = {"keep_dir": kept, "size": 16, "crop": "lfw", "grayscale": False}
    pairs, lfw = [tmp_path / "pairs.txt"], tmp_path / "lfw"
    fold_models.train_folds(pairs, lfw, fold_models.saving(train_fn, kept), folds="2", **kw)  # "interrupted" after fold 2
    fold_models.train_folds(pairs, lfw, fold_models.saving(train_fn, kept), folds=None, **kw)
    others = [{f"P{i:02d}" for i in range(9) if i // 3 != k} for k in range(3)]
    assert seen == [others[1], others[0], others[2]]  # fold 2 once, then only folds 1 and 3
    assert len(list(kept.glob("*.safetensors"))) == 3


def test_roc_names_of_rows_that_share_a_long_beginning_differ():
    """verification.py --roc-dir: two ensembles of the same first folders must not overwrite one ROC file."""
    from facespace.files import label_filename

    def roc_name(label):
        return label_filename(label, prefix="roc_", suffix=".png")

    four = "ensemble of verifiers retrained per fold (kept models in runs/folds-b24 + runs/folds-b64w12 + runs/folds-bwide)"
    five = four[:-1] + " + runs/folds-binner)"
    names = {roc_name(four), roc_name(five), roc_name("pca-32")}
    assert len(names) == 3 and all(n.startswith("roc_") and n.endswith(".png") and len(n) < 90 for n in names)
    assert roc_name("pca-32") == roc_name("pca-32")  # the same row, the same file
