"""The LFW View 2 protocol: per-fold thresholds, metrics, per-fold training honoured, ROC PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from people_helpers import TinyConfig, TinyEncoder, write_people

from facespace.errors import DataError, FacespaceError
from facespace.people.lfw import _report, evaluate_distances, evaluate_lfw, save_roc
from facespace.people.lfw_folds import fold_training_faces
from facespace.people.thresholds import roc_metrics


def test_threshold_is_chosen_on_the_other_folds():
    # fold 0 alone would be separated at 0.55, the other folds at 0.2: fold 0 must get 0.2
    same = np.tile([True, True, False, False], 4)
    folds = np.repeat([0, 1, 2, 3], 4)
    d = np.r_[[0.5, 0.5, 0.6, 0.6], np.tile([0.1, 0.1, 0.3, 0.3], 3)]
    r = evaluate_distances(d, same, folds)
    assert r.thresholds == pytest.approx([0.2] * 4)
    assert r.fold_accuracies == pytest.approx([0.5, 1.0, 1.0, 1.0])
    assert r.mean_accuracy == pytest.approx(3.5 / 4)
    assert r.standard_error == pytest.approx(np.std([0.5, 1, 1, 1], ddof=1) / 2)
    # the diagnostic: each fold at its own best threshold (fold 0's 0.55 separates it)
    assert r.best_accuracies == pytest.approx([1.0] * 4)
    assert "own best threshold (diagnostic, not the protocol): 1.0000" in r.format()


def test_target_far_threshold_ignores_the_calibration_folds_same_person_pairs():
    # the other folds' same-person pairs sit at 0.1 (people the model trained on), the tested fold's at 0.4:
    # the most accurate threshold on the other folds (0.3) rejects them; one set on impostors alone does not
    same = np.tile([True, True, False, False], 4)
    folds = np.repeat([0, 1, 2, 3], 4)
    d = np.r_[[0.4, 0.4, 0.7, 0.7], [0.1, 0.1, 0.5, 0.6], [0.1, 0.1, 0.55, 0.65], [0.1, 0.1, 0.52, 0.62]]
    assert evaluate_distances(d, same, folds).fold_accuracies[0] == pytest.approx(0.5)
    r = evaluate_distances(d, same, folds, target_far=0.34)  # 2 of the 6 impostors (0.5, 0.52) may pass
    assert r.thresholds[0] == pytest.approx(0.55) and r.thresholds[0] < 0.55
    assert r.fold_accuracies[0] == 1.0 and r.target_far == 0.34
    assert "thresholds: at 0.34 false accepts" in r.format() and r.to_dict()["target_far"] == 0.34
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(FacespaceError, match="false-accept rate in \\(0, 1\\)"):
            evaluate_distances(d, same, folds, target_far=bad)


def test_roc_metrics_known_answers():
    d = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.5, 0.7, 0.8])
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    fpr, tpr, auc, eer, tar = roc_metrics(d, same)
    assert eer == pytest.approx(0.25)
    assert auc == pytest.approx(14 / 16)  # 14 of 16 genuine-impostor pairs ordered right
    assert tar[0.01] == pytest.approx(0.75)  # three genuine pairs beat every impostor
    perfect = roc_metrics([0.1, 0.2, 0.8, 0.9], [True, True, False, False])
    assert perfect[2] == 1.0 and perfect[3] == 0.0 and perfect[4][0.001] == 1.0


def test_bad_distances_refused():
    with pytest.raises(FacespaceError, match="one length"):
        evaluate_distances([0.1, 0.2], [True], [0, 1])
    with pytest.raises(FacespaceError, match="two folds"):
        evaluate_distances([0.1, 0.9], [True, False], [0, 0])


@pytest.fixture(scope="module")
def fake_lfw(tmp_path_factory):
    """An LFW-layout folder of 12 synthetic people (4 jpgs each) and a 3-fold pairs file."""
    root = tmp_path_factory.mktemp("lfw")
    images = root / "lfw-deepfunneled"
    write_people(images, 12, 4, ext=".jpg")
    lines = ["3\t2"]
    for fold in range(3):
        p = [f"P{4 * fold + i:02d}" for i in range(4)]
        lines += [f"{p[0]}\t1\t2", f"{p[1]}\t2\t3", f"{p[2]}\t1\t{p[3]}\t1", f"{p[0]}\t3\t{p[3]}\t4"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def test_per_fold_training_never_sees_the_tested_people(fake_lfw, tmp_path):
    seen = []

    def train_fn(faces):
        seen.append(set(faces.names.tolist()))
        return TinyEncoder(TinyConfig(size=16, channels=3))

    r = evaluate_lfw(None, fake_lfw / "pairs.txt", train_fn=train_fn, size=16, roc=tmp_path / "roc.png", progress=False)
    assert len(seen) == 3
    for fold, names in enumerate(seen):
        tested = {f"P{4 * fold + i:02d}" for i in range(4)}
        others = {f"P{i:02d}" for i in range(12)} - tested
        assert names == others  # exactly the other folds' people
    assert r.protocol_honoured is True and "honoured" in r.protocol_note
    assert r.mean_accuracy == 1.0 and r.auc == 1.0 and r.n_pairs == 12
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_view1_files_read_as_two_folds_test_devtest_with_a_devtrain_threshold(fake_lfw, tmp_path):
    lines = (fake_lfw / "pairs.txt").read_text().splitlines()[1:]
    dev_train, dev_test = tmp_path / "pairsDevTrain.txt", tmp_path / "pairsDevTest.txt"
    # View 1 layout: 'N', then N matched and N mismatched lines (folds 1-2 of the fixture, then fold 3)
    dev_train.write_text("\n".join(["4"] + lines[0:2] + lines[4:6] + lines[2:4] + lines[6:8]) + "\n")
    dev_test.write_text("\n".join(["2"] + lines[8:]) + "\n")
    seen = []

    def train_fn(faces):
        seen.append(set(faces.names.tolist()))
        return TinyEncoder(TinyConfig(size=16, channels=3))

    r = evaluate_lfw(None, [dev_train, dev_test], fake_lfw / "lfw-deepfunneled", train_fn=train_fn, size=16,
                     folds="2", progress=False)
    assert r.folds == [2] and not r.full_protocol and r.n_pairs == 4
    assert seen == [{f"P{i:02d}" for i in range(8)}]  # one training, without DevTest's people P08-P11
    assert r.protocol_honoured is True
    with pytest.raises(DataError, match="pairsDevTrain.txt and pairsDevTest.txt together"):
        evaluate_lfw(None, dev_test, fake_lfw / "lfw-deepfunneled", train_fn=train_fn, size=16, progress=False)


def test_untested_training_adds_people_in_no_pair_but_never_the_tested_fold(fake_lfw, tmp_path):
    lines = (fake_lfw / "pairs.txt").read_text().splitlines()[1:]
    dev_train, dev_test = tmp_path / "pairsDevTrain.txt", tmp_path / "pairsDevTest.txt"
    dev_train.write_text("\n".join(["2"] + lines[:4]) + "\n")  # P00-P03; P04-P07 are in no pair
    dev_test.write_text("\n".join(["2"] + lines[8:]) + "\n")  # P08-P11
    seen = []

    def train_fn(faces):
        seen.append(set(faces.names.tolist()))
        return TinyEncoder(TinyConfig(size=16, channels=3))

    for whom in ("other-folds", "untested"):
        r = evaluate_lfw(None, [dev_train, dev_test], fake_lfw / "lfw-deepfunneled", train_fn=train_fn, size=16,
                         folds="2", progress=False, train_people=whom)
        assert r.protocol_honoured is True
    assert seen == [{f"P{i:02d}" for i in range(4)}, {f"P{i:02d}" for i in range(8)}]
    with pytest.raises(FacespaceError, match="unknown train_people"):
        evaluate_lfw(None, [dev_train, dev_test], fake_lfw / "lfw-deepfunneled", train_fn=train_fn, train_people="all")


def test_fold_training_faces_keeps_the_tested_and_held_out_folds_people_out(fake_lfw, tmp_path):
    from facespace.data import load_faces, read_pair_files

    plist = read_pair_files(fake_lfw / "pairs.txt")
    faces = load_faces(str(fake_lfw / "lfw-deepfunneled"), size=8, progress=False, cache=False)
    people = [{f"P{4 * fold + i:02d}" for i in range(4)} for fold in range(3)]
    train, banned = fold_training_faces(plist, faces, 0)
    assert set(train.names.tolist()) == people[1] | people[2] and banned == people[0] and len(train) == 32
    train, banned = fold_training_faces(plist, faces, 2, held_out=True)  # the next fold wraps round to fold 0
    assert set(train.names.tolist()) == people[1] and banned == people[2] | people[0]
    # untested: a person in no pair trains too, though never in the default
    extra = tmp_path / "lfw"
    write_people(extra, 12, 4, ext=".jpg")
    write_people(extra, 1, 2, ext=".jpg", prefix="Q")
    more = load_faces(str(extra), size=8, progress=False, cache=False)
    assert "Q00" not in set(fold_training_faces(plist, more, 1)[0].names.tolist())
    assert set(fold_training_faces(plist, more, 1, untested=True)[0].names.tolist()) == people[0] | people[2] | {"Q00"}


def test_held_out_fold_calibration_keeps_two_folds_out_of_training(fake_lfw):
    seen = []

    def train_fn(faces):
        seen.append(set(faces.names.tolist()))
        return TinyEncoder(TinyConfig(size=16, channels=3))

    r = evaluate_lfw(None, fake_lfw / "pairs.txt", train_fn=train_fn, size=16, progress=False,
                     calibrate="held-out-fold")
    people = [{f"P{4 * fold + i:02d}" for i in range(4)} for fold in range(3)]
    assert seen == [people[2], people[0], people[1]]  # fold k trains without folds k and k + 1
    assert r.protocol_honoured is True and "next fold's pairs only" in r.protocol_note
    assert len(r.fold_accuracies) == 3


def test_held_out_fold_threshold_comes_from_that_fold_alone():
    # fold 1 alone separates at 0.55, folds 0 and 2 at 0.2; fold k is calibrated on fold k + 1
    same = np.tile([True, True, False, False], 3)
    folds = np.repeat([0, 1, 2], 4)
    d = np.r_[[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.6, 0.6], [0.1, 0.1, 0.3, 0.3]]
    r = _report(lambda k: d, same, folds, metric="cosine", protocol_honoured=True, protocol_note="",
                calibration_fold=lambda k: (k + 1) % 3)
    assert r.thresholds == pytest.approx([0.55, 0.2, 0.2])
    assert r.fold_accuracies == pytest.approx([0.5, 0.5, 1.0])  # the wrong fold's threshold fails fold 0


def test_unknown_or_impossible_calibration_refused(fake_lfw):
    with pytest.raises(FacespaceError, match="unknown calibrate='nine'"):
        evaluate_lfw(TinyEncoder(TinyConfig(channels=3)), fake_lfw / "pairs.txt", calibrate="nine", progress=False)
    with pytest.raises(FacespaceError, match="needs per-fold training"):
        evaluate_lfw(TinyEncoder(TinyConfig(channels=3)), fake_lfw / "pairs.txt", calibrate="held-out-fold",
                     progress=False)


def test_fixed_model_says_the_protocol_cannot_be_checked(fake_lfw):
    r = evaluate_lfw(TinyEncoder(TinyConfig(channels=3)), fake_lfw / "pairs.txt", progress=False)
    assert r.protocol_honoured is None and "cannot be checked" in r.protocol_note
    assert len(r.fold_accuracies) == 3 and r.mean_accuracy == 1.0
    assert "mean accuracy: 1.0000 ± 0.0000" in r.format()


def test_missing_images_and_single_fold_refused(fake_lfw, tmp_path):
    bad = tmp_path / "pairs.txt"
    bad.write_text("2\t1\nP00\t1\t9\nP00\t1\tP01\t1\nP02\t1\t2\nP02\t1\tP03\t1\n")
    with pytest.raises(DataError, match="not under"):
        evaluate_lfw(TinyEncoder(TinyConfig(channels=3)), bad, fake_lfw / "lfw-deepfunneled", progress=False)
    one = tmp_path / "dev.txt"
    one.write_text("1\nP00\t1\t2\nP00\t1\tP01\t1\n")
    with pytest.raises(DataError, match="single fold"):
        evaluate_lfw(TinyEncoder(TinyConfig(channels=3)), one, fake_lfw / "lfw-deepfunneled", progress=False)


def test_roc_png_from_a_report(tmp_path, rng):
    same = np.tile(np.repeat([True, False], 20), 4)
    d = np.where(same, 0.3, 0.6) + rng.normal(0, 0.15, len(same))
    r = evaluate_distances(d, same, np.repeat(np.arange(4), 40))
    path = save_roc(r, tmp_path / "sub" / "roc.png")
    assert Path(path).stat().st_size > 1000
    assert 0.5 < r.auc < 1.0 and 0 < r.eer < 0.5
