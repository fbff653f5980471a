"""`facespace train verifier`, the crop recorded with a model and re-applied to image files, and
`evaluate-lfw --retrain` (one fresh verifier per fold, never trained on a tested fold's person)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from people_helpers import write_people

from facespace.models.registry import load_model
from facespace.data.crops import TIGHT_BOX, model_crop, parse_crop
from facespace.data import load_images
from facespace.errors import DataError

TINY = ["--size", "16", "--blocks", "1,1", "--width", "4", "--code-size", "8", "--epochs", "2",
        "--threads", "1", "--batch-size", "8"]  # fmt: skip


@pytest.fixture(scope="module")
def fake_lfw(tmp_path_factory) -> Path:
    """8 synthetic people x 4 images, 250x250 JPEGs in the LFW layout, and a 2-fold pairs file
    (fold 1: P00-P03, fold 2: P04-P07)."""
    root = tmp_path_factory.mktemp("lfw")
    write_people(root / "lfw-deepfunneled", 8, 4, size=250, ext=".jpg")
    lines = ["2\t2"]
    for fold in range(2):
        p = [f"P{4 * fold + i:02d}" for i in range(4)]
        lines += [f"{p[0]}\t1\t2", f"{p[1]}\t2\t3", f"{p[2]}\t1\t{p[3]}\t1", f"{p[0]}\t3\t{p[3]}\t4"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def trained(fake_lfw, tmp_path_factory):
    """`(run folder, JSON summary)` of one tiny `facespace train verifier --crop tight` run."""
    from facespace.cli import main

    out = tmp_path_factory.mktemp("runs") / "v"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["train", "verifier", "--data", str(fake_lfw / "lfw-deepfunneled"), "--crop", "tight",
              "--dropout", "0.5", "--shift-test", "1", "--out", str(out), *TINY])  # fmt: skip
    return out, json.loads(buf.getvalue().strip().splitlines()[-1])


def test_train_verifier_writes_a_run_folder_with_its_crop(trained):
    out, summary = trained
    assert summary["kind"] == "verifier" and summary["code_size"] == 8 and summary["crop"] == "tight"
    assert summary["people"] == 8 and summary["epochs_run"] == 2
    for name in ("best.safetensors", "last.safetensors", "metrics.csv", "loss.png", "run.json"):
        assert (out / name).is_file(), name
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    m = load_model(out / "best.safetensors")
    assert m.kind == "verifier" and m.image_shape == (16, 16, 3) and m.config.blocks == (1, 1)
    assert m.config.dropout == 0.5 and m.config.shift_test == 1
    assert m.checkpoint_info["extra"]["crop"] == list(TIGHT_BOX)
    assert load_model(out / "last.safetensors").checkpoint_info["extra"]["crop"] == list(TIGHT_BOX)
    assert model_crop(m) == TIGHT_BOX
    codes = m.encode(np.random.default_rng(0).random((3, 16, 16, 3), dtype=np.float32))
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, atol=1e-5)


def test_recorded_crop_is_applied_to_image_files(trained, fake_lfw, run_cli):
    from facespace.pipelines.codes import encode
    from facespace.people.verification import verify

    m = load_model(trained[0] / "best.safetensors")
    a, b = fake_lfw / "lfw-deepfunneled" / "P00" / "P00_0001.jpg", fake_lfw / "lfw-deepfunneled" / "P03" / "P03_0002.jpg"
    cut = load_images([a, b], size=16, crop=TIGHT_BOX)  # the faces cut by hand, as in training
    d_files, _ = verify(m, a, b, max_distance=1.0)
    d_arrays, _ = verify(m, cut[0], cut[1], max_distance=1.0)
    assert d_files == pytest.approx(d_arrays, abs=1e-6)
    np.testing.assert_allclose(encode(m, [str(a)]), m.encode(cut[:1]), atol=1e-6)
    # the crop matters: the default LFW cut of the same files gives another distance
    d_lfw, _ = verify(m, a, b, max_distance=1.0, crop="lfw")
    assert abs(d_lfw - d_files) > 1e-4
    code, out, _ = run_cli("people", "verify", "--model", trained[0] / "best.safetensors", a, b, "--max-distance", "1")
    assert code == 0 and json.loads(out)["distance"] == pytest.approx(d_files, abs=1e-5)
    code, out, _ = run_cli("people", "verify", "--model", trained[0] / "best.safetensors", a, b, "--max-distance", "1", "--crop", "lfw")
    assert code == 0 and json.loads(out)["distance"] == pytest.approx(d_lfw, abs=1e-5)


def test_a_face_crop_is_used_whole_and_a_named_crop_that_does_not_fit_is_refused(trained, tmp_path, run_cli):
    """The model's recorded crop cuts 250x250 LFW originals; a file of another size (a 100x100 face
    crop) is used whole with no option given. A crop the user names is applied as named."""
    from PIL import Image

    rng = np.random.default_rng(1)
    small, other = tmp_path / "small.png", tmp_path / "other.png"
    for path in (small, other):
        Image.fromarray((rng.random((100, 100, 3)) * 255).astype(np.uint8)).save(path)
    model = trained[0] / "best.safetensors"
    code, out, _ = run_cli("people", "verify", "--model", model, small, other, "--max-distance", "1")
    whole = json.loads(out)
    code_none, out_none, _ = run_cli("people", "verify", "--model", model, small, other, "--max-distance", "1",
                                     "--crop", "none")
    assert code == 0 and code_none == 0 and whole["distance"] == json.loads(out_none)["distance"] > 0
    code, _, err = run_cli("people", "verify", "--model", model, small, small, "--max-distance", "1", "--crop", "tight")
    assert code == 2 and "small.png" in err and "tight" in err and "--crop none" in err


def test_retrain_honours_the_protocol_and_never_trains_on_a_tested_person(trained, fake_lfw, tmp_path, run_cli,
                                                                         monkeypatch):
    import facespace.training.verifier as vt

    seen, original = [], vt.train_verifier

    def spy(faces, **kw):
        seen.append(set(faces.names.tolist()))
        return original(faces, **kw)

    monkeypatch.setattr(vt, "train_verifier", spy)
    report = tmp_path / "r.json"
    code, out, _ = run_cli("people", "evaluate-lfw", "--model", trained[0] / "best.safetensors", "--pairs", fake_lfw / "pairs.txt",
                           "--retrain", "--json", report)
    assert code == 0, out
    assert "protocol: per-fold retraining" in out and "honoured: each fold's model" in out
    fold_people = [{f"P{i:02d}" for i in range(4)}, {f"P{i:02d}" for i in range(4, 8)}]
    assert seen == [fold_people[1], fold_people[0]]  # fold 1's model saw only fold 2's people, and back
    r = json.loads(report.read_text())
    assert r["protocol_honoured"] is True and r["retrained"] is True and r["full_protocol"] is True
    assert r["crop"] == "tight" and r["folds"] == [1, 2] and r["n_pairs"] == 8
    # a subset of folds is said to be one
    seen.clear()
    code, out, _ = run_cli("people", "evaluate-lfw", "--model", trained[0] / "best.safetensors", "--pairs", fake_lfw / "pairs.txt",
                           "--retrain", "--folds", "2", "--json", report)
    r = json.loads(report.read_text())
    assert code == 0 and seen == [fold_people[0]] and r["folds"] == [2] and r["full_protocol"] is False
    assert "NOT the full View 2 protocol" in out and r["n_pairs"] == 4


def test_retrain_on_view1_files_untested_people_and_a_far_threshold(trained, fake_lfw, tmp_path, run_cli, monkeypatch):
    """`--pairs DevTrain --pairs DevTest --folds 2 --train-people untested --target-far`: View 1 from the CLI."""
    import facespace.training.verifier as vt

    seen, original = [], vt.train_verifier

    def spy(faces, **kw):
        seen.append(set(faces.names.tolist()))
        return original(faces, **kw)

    monkeypatch.setattr(vt, "train_verifier", spy)
    lines = (fake_lfw / "pairs.txt").read_text().splitlines()[1:]
    dev_train, dev_test = tmp_path / "pairsDevTrain.txt", tmp_path / "pairsDevTest.txt"
    dev_train.write_text("\n".join(["2"] + lines[:4]) + "\n")  # View 1 layout: N, N matched, N mismatched
    dev_test.write_text("\n".join(["1", lines[4], lines[6]]) + "\n")  # P04, P06, P07: P05 is in no pair
    report = tmp_path / "r.json"
    images = fake_lfw / "lfw-deepfunneled"
    code, out, err = run_cli("people", "evaluate-lfw", "--model", trained[0] / "best.safetensors", "--pairs", dev_train, "--pairs", dev_test,
                             "--lfw", images, "--retrain", "--folds", "2", "--train-people", "untested",
                             "--target-far", "0.5", "--json", report)
    assert code == 0, err
    # one training, on everyone outside DevTest: DevTrain's people and P05, who is in no pair
    assert seen == [{f"P{i:02d}" for i in range(4)} | {"P05"}]
    r = json.loads(report.read_text())
    assert r["folds"] == [2] and r["n_pairs"] == 2 and r["target_far"] == 0.5 and r["protocol_honoured"] is True
    assert "thresholds: at 0.5 false accepts" in out
    code, _, err = run_cli("people", "evaluate-lfw", "--model", trained[0] / "best.safetensors", "--pairs", dev_train, "--pairs", dev_test,
                           "--lfw", images, "--retrain", "--train-people", "everyone")
    assert code == 2 and "unknown train_people='everyone'" in err and "untested" in err
    code, _, err = run_cli("people", "evaluate-lfw", "--model", "pixels:16", "--pairs", fake_lfw / "pairs.txt", "--train-people", "untested")
    assert code == 2 and "--retrain" in err


def test_fixed_verifier_says_the_protocol_cannot_be_checked(trained, fake_lfw, run_cli):
    code, out, _ = run_cli("people", "evaluate-lfw", "--model", trained[0] / "best.safetensors", "--pairs", fake_lfw / "pairs.txt")
    assert code == 0 and "cannot be checked" in out and "crop: tight" in out


def test_bad_input_gives_clear_errors(fake_lfw, tmp_path, run_cli):
    code, _, err = run_cli("train", "verifier", "--data", "embedded", *TINY)
    assert code == 2 and "no person names" in err
    code, _, err = run_cli("train", "verifier", "--data", fake_lfw / "lfw-deepfunneled", "--crop", "face", *TINY)
    assert code == 2 and "unknown crop 'face'" in err and "tight" in err
    one = tmp_path / "one"
    write_people(one, 1, 3, size=40)
    write_people(one, 1, 1, size=40, prefix="Q")
    code, _, err = run_cli("train", "verifier", "--data", one, "--out", tmp_path / "r", *TINY)
    assert code == 2 and "at least 2" in err and not (tmp_path / "r" / "best.safetensors").exists()
    code, _, err = run_cli("people", "evaluate-lfw", "--model", "pixels:16", "--pairs", fake_lfw / "pairs.txt", "--retrain")
    assert code == 2 and "--retrain" in err
    with pytest.raises(DataError, match="unknown crop"):
        parse_crop("middle")
    assert parse_crop("none") is None and parse_crop("lfw") == "lfw"


def test_index_encode_and_search_use_the_recorded_crop(trained, fake_lfw, tmp_path, run_cli):
    from facespace.index import Index

    model = trained[0] / "best.safetensors"
    m = load_model(model)
    folder = fake_lfw / "lfw-deepfunneled" / "P01"
    files = sorted(folder.glob("*.jpg"))
    tight = m.encode(load_images(files, size=16, crop=TIGHT_BOX))
    code, _, _ = run_cli("index", "build", folder, "--model", model, "--out", tmp_path / "p.index")
    assert code == 0
    index = Index.load(tmp_path / "p.index")
    ids = index.ids
    order = [Path(r["path"]).name for r in index.get_metadata(ids)]
    np.testing.assert_allclose(index.reconstruct(ids),
                               tight[[[f.name for f in files].index(n) for n in order]], atol=1e-5)
    code, _, _ = run_cli("encode", folder, "--model", model, "--out", tmp_path / "c.npy")
    assert code == 0
    np.testing.assert_allclose(np.sort(np.load(tmp_path / "c.npy"), axis=0), np.sort(tight, axis=0), atol=1e-5)
    # a query file is cut the same way: it finds itself at distance 0
    code, out, _ = run_cli("index", "search", tmp_path / "p.index", files[2], "-k", "1")
    assert code == 0 and out.splitlines()[1].split(",")[2].endswith(files[2].name)
    assert float(out.splitlines()[1].split(",")[-1]) == pytest.approx(0.0, abs=1e-5)
    # --crop lfw overrides the recorded crop and gives other codes
    code, _, _ = run_cli("encode", folder, "--model", model, "--out", tmp_path / "l.npy", "--crop", "lfw")
    assert code == 0 and not np.allclose(np.sort(np.load(tmp_path / "l.npy"), axis=0), np.sort(tight, axis=0), atol=1e-4)


def test_ensemble_of_verifiers_on_two_crops_is_one_model(trained, fake_lfw, tmp_path, run_cli):
    """`facespace ensemble`: one checkpoint, cut at the union box; verify uses it like any model."""
    from facespace.models.registry import save_model

    tight = load_model(trained[0] / "best.safetensors")
    inner = save_model(tight, tmp_path / "inner.safetensors", extra={**tight.checkpoint_info["extra"], "crop": "lfw"})
    ens_path = tmp_path / "ens.safetensors"
    code, out, err = run_cli("models", "ensemble", trained[0] / "best.safetensors", inner, "--out", ens_path, "--size", "40")
    assert code == 0, err
    row = json.loads(out)
    assert row["crop"] == "tight" and row["code_size"] == 16 and row["size"] == 40  # lfw's box lies inside tight's
    ens = load_model(ens_path, kind="ensemble")
    assert [m["crop"] for m in ens.checkpoint_info["extra"]["members"]] == [list(TIGHT_BOX), "lfw"]
    a, b = fake_lfw / "lfw-deepfunneled" / "P00" / "P00_0001.jpg", fake_lfw / "lfw-deepfunneled" / "P03" / "P03_0002.jpg"
    code, out, _ = run_cli("people", "verify", "--model", ens_path, a, b, "--max-distance", "1")
    assert code == 0
    z = ens.encode(load_images([a, b], size=40, crop=TIGHT_BOX))  # the files cut at the recorded union box
    assert json.loads(out)["distance"] == pytest.approx(1 - float(z[0] @ z[1]), abs=1e-5)
    # close to the mean of the members' own distances, each member reading the files at its own crop
    members = [1 - float(np.prod(tight.encode(load_images([a, b], size=16, crop=c)), axis=0).sum()) for c in (TIGHT_BOX, "lfw")]
    assert json.loads(out)["distance"] == pytest.approx(np.mean(members), abs=0.05)
    code, _, err = run_cli("models", "ensemble", ens_path, "--out", tmp_path / "bad.safetensors")
    assert code != 0 and "must be verifiers" in err and not (tmp_path / "bad.safetensors").exists()


def test_retrain_of_an_ensemble_retrains_each_member_per_fold(trained, fake_lfw, tmp_path, run_cli, monkeypatch):
    """`evaluate-lfw ENSEMBLE --retrain`: every member trained afresh on the other fold's people only,
    on its own box cut from the union faces; the per-fold models are ensembles again."""
    import facespace.training.verifier as vt
    from facespace.models.registry import save_model
    from facespace.models.ensemble import ensemble_verifiers

    tight = load_model(trained[0] / "best.safetensors")
    inner = load_model(save_model(tight, tmp_path / "inner.safetensors",
                                  extra={**tight.checkpoint_info["extra"], "crop": "lfw"}))
    ens_path = save_model(ensemble_verifiers([tight, inner], size=40), tmp_path / "ens.safetensors")
    seen, made, original = [], [], vt.train_verifier

    def spy(faces, **kw):
        seen.append((set(faces.names.tolist()), faces.images.shape[1:], kw["crop"]))
        return original(faces, **kw)

    real_build = vt.ensemble_retrainer

    def spy_retrainer(*a, **kw):
        fn = real_build(*a, **kw)
        return lambda faces: made.append(fn(faces)) or made[-1]

    monkeypatch.setattr(vt, "train_verifier", spy)
    monkeypatch.setattr(vt, "ensemble_retrainer", spy_retrainer)
    report = tmp_path / "r.json"
    code, out, err = run_cli("people", "evaluate-lfw", "--model", ens_path, "--pairs", fake_lfw / "pairs.txt", "--retrain", "--json", report)
    assert code == 0, err
    fold_people = [{f"P{i:02d}" for i in range(4)}, {f"P{i:02d}" for i in range(4, 8)}]
    assert [s[0] for s in seen] == [fold_people[1]] * 2 + [fold_people[0]] * 2  # two members per fold
    assert all(s[1] == (16, 16, 3) for s in seen) and [s[2] for s in seen[:2]] == [list(TIGHT_BOX), "lfw"]
    assert len(made) == 2 and all(m.kind == "ensemble" and m.crop == TIGHT_BOX for m in made)
    r = json.loads(report.read_text())
    assert r["protocol_honoured"] is True and r["retrained"] is True and r["full_protocol"] is True
