"""The people commands: verify, evaluate-lfw, people enroll/identify/list/remove, cluster."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from people_helpers import TinyConfig, TinyEncoder, write_people
from PIL import Image

from facespace.models.registry import save_model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Grey PGM portraits of 8 people (5 each) in folders, a fake LFW with 3-fold pairs, a grey model."""
    root = tmp_path_factory.mktemp("people")
    portraits = write_people(root / "portraits", 8, 5, ext=".pgm", grey=True, seed=6)
    lfw = root / "lfw"
    write_people(lfw / "lfw-deepfunneled", 12, 4, ext=".jpg", grey=True, seed=2)
    lines = ["3\t2"]
    for fold in range(3):
        p = [f"P{4 * fold + i:02d}" for i in range(4)]
        lines += [f"{p[0]}\t1\t2", f"{p[1]}\t2\t3", f"{p[2]}\t1\t{p[3]}\t1", f"{p[0]}\t3\t{p[3]}\t4"]
    (lfw / "pairs.txt").write_text("\n".join(lines) + "\n")
    (lfw / "dev.txt").write_text("2\nP00\t1\t2\nP05\t1\t3\nP01\t1\tP02\t1\nP03\t2\tP07\t1\n")
    model = save_model(TinyEncoder(TinyConfig(size=16, channels=1)), root / "tiny.safetensors")
    train = write_people(root / "train", 150, 1, ext=".pgm", grey=True, seed=40, prefix="T")
    store_reference(model, [p for ps in train.values() for p in ps])
    return {"root": root, "portraits": portraits, "lfw": lfw, "model": model}


def store_reference(model_path, faces) -> None:
    """Store a quality reference measured on the test model's "training faces" in its checkpoint."""
    from facespace.models.registry import load_model
    from facespace.data import load_images
    from facespace.people.quality_reference import quality_reference, save_quality_reference

    m = load_model(model_path)
    save_quality_reference(m, quality_reference(load_images(faces, size=16, grayscale=True), model=m))


def flat(text: str) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(text.split())


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_people_enroll_identify_list_remove(run_cli, world, tmp_path):
    m, g, people = world["model"], tmp_path / "g.db", world["portraits"]
    for name in ["P00", "P01", "P02", "P03", "P04", "P05"]:
        code, out, err = run_cli("people", "enroll", name, *people[name][:3], "--model", m, "--gallery", g)
        assert code == 0, err
        assert out.strip() == f"{name},3"
    probes = [people["P01"][3], people["P04"][4], people["P06"][0], people["P07"][1]]
    code, out, err = run_cli("people", "identify", *probes, "--model", m, "--gallery", g)
    assert code == 0, err
    assert out.splitlines()[0] == "path,name,distance,quality"
    got = rows(out)
    assert [r["name"] for r in got] == ["P01", "P04", "unknown", "unknown"]
    assert [r["path"] for r in got] == [str(p) for p in probes]
    assert all(float(r["distance"]) >= 0 for r in got)
    code, out, _ = run_cli("people", "list", "--gallery", g)
    assert code == 0 and rows(out)[0] == {"name": "P00", "images": "3"} and len(rows(out)) == 6
    code, _, err = run_cli("people", "remove", "P05", "--gallery", g)
    assert code == 0 and "removed P05" in err
    assert len(rows(run_cli("people", "list", "--gallery", g)[1])) == 5


def test_enroll_a_folder_of_portraits(run_cli, world, tmp_path):
    m, g, people = world["model"], tmp_path / "g.db", world["portraits"]
    folder = people["P02"][0].parent
    assert run_cli("people", "enroll", "P02", folder, "--model", m, "--gallery", g)[1].strip() == "P02,5"
    run_cli("people", "enroll", "P03", people["P03"][0].parent, "--model", m, "--gallery", g)
    code, out, _ = run_cli("people", "identify", folder, "--model", m, "--gallery", g, "--max-distance", "0.5")
    assert code == 0 and {r["name"] for r in rows(out)} == {"P02"}


def test_people_bad_input(run_cli, world, tmp_path):
    m, g, people = world["model"], tmp_path / "g.db", world["portraits"]
    code, _, err = run_cli("people", "identify", people["P00"][0], "--model", m, "--gallery", g)
    assert code == 2 and "no gallery at" in err  # said so, and no empty file created as a side effect (#27.4)
    assert not g.exists()
    assert run_cli("people", "enroll", "P00", *people["P00"][:2], "--model", m, "--gallery", g)[0] == 0
    code, _, err = run_cli("people", "enroll", "P00", people["P00"][0], "--model", m, "--gallery", g)
    assert code == 2 and "already enrolled as 'P00'" in err
    other = save_model(TinyEncoder(TinyConfig(size=16, channels=1, seed=9)), tmp_path / "other.safetensors")
    code, _, err = run_cli("people", "enroll", "P01", people["P01"][0], "--model", other, "--gallery", g)
    assert code == 2 and "another model" in err
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((40, 40), 128, np.uint8)).save(blank)
    code, _, err = run_cli("people", "enroll", "P01", blank, "--model", m, "--gallery", g)
    assert code == 2 and "blank" in err
    code, _, err = run_cli("people", "list", "--gallery", tmp_path / "none.db")
    assert code == 2 and "no gallery" in err
    assert [r["images"] for r in rows(run_cli("people", "list", "--gallery", g)[1])] == ["2"]  # untouched


def test_evaluate_lfw_pixels_per_fold(run_cli, world, tmp_path):
    lfw = world["lfw"]
    code, out, err = run_cli("people", "evaluate-lfw", "--model", "pixels:16:grey", "--pairs", lfw / "pairs.txt",
                             "--roc", tmp_path / "roc.png", "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "mean accuracy: 1.0000 ± 0.0000" in out and "protocol: honoured" in out
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["protocol_honoured"] is True and len(report["fold_accuracies"]) == 3
    code, out, err = run_cli("people", "evaluate-lfw", "--model", "pixels:16:grey", "--pairs", lfw / "pairs.txt", "--calibrate", "held-out-fold")
    assert code == 0 and "next fold's pairs only" in out, err
    code, _, err = run_cli("people", "evaluate-lfw", "--model", "pixels:16:grey", "--pairs", lfw / "pairs.txt", "--calibrate", "nine")
    assert code != 0 and "held-out-fold" in err


def test_calibrate_then_verify(run_cli, world, tmp_path):
    lfw = world["lfw"]
    model = save_model(TinyEncoder(TinyConfig(size=16, channels=1)), tmp_path / "m.safetensors")
    img = lambda name, i: lfw / "lfw-deepfunneled" / name / f"{name}_{i:04d}.jpg"  # noqa: E731
    a, b, c = img("P00", 1), img("P00", 2), img("P01", 1)  # a calibration genuine pair; c and P02 an impostor pair
    code, _, err = run_cli("people", "verify", "--model", model, a, b)
    assert code == 2 and "no calibrated verification threshold" in err
    code, _, err = run_cli("people", "evaluate-lfw", "--model", model, "--pairs", lfw / "dev.txt", "--save-threshold")
    assert code == 0 and "stored in" in err, err
    code, out, err = run_cli("people", "verify", "--model", model, a, b)
    assert code == 0, err
    same = json.loads(out)
    assert same["same"] is True and same["distance"] <= same["threshold"] and "same person" in err
    diff = json.loads(run_cli("people", "verify", "--model", model, c, img("P02", 1))[1])
    assert diff["same"] is False and diff["threshold"] == same["threshold"]
    forced = json.loads(run_cli("people", "verify", "--model", model, c, img("P02", 1), "--max-distance", "2.5")[1])
    assert forced["same"] is True and forced["threshold"] == 2.5


def test_cluster_an_index(run_cli, world, tmp_path):
    from facespace.data import load_images
    from facespace.index import Index

    paths = [p for name in ["P00", "P01", "P02", "P03"] for p in world["portraits"][name]]
    codes = TinyEncoder(TinyConfig(size=16, channels=1)).encode(load_images(paths, size=16, grayscale=True))
    index = Index(codes.shape[1], metric="cosine")
    index.add(codes, metadata=[{"path": str(p), "name": p.parent.name} for p in paths])
    index.save(tmp_path / "faces.index")
    code, _, err = run_cli("index", "cluster", tmp_path / "faces.index", "--method", "agglomerative", "--n-clusters", "4",
                           "--min-cluster-size", "2", "--out", tmp_path / "c.csv", "--montages", tmp_path / "montages")
    assert code == 0, err
    got = rows((tmp_path / "c.csv").read_text())
    assert len(got) == 20 and set(got[0]) == {"id", "path", "name", "cluster"}
    by_name = {}
    for r in got:
        by_name.setdefault(r["name"], set()).add(r["cluster"])
    assert all(len(v) == 1 for v in by_name.values()) and len({next(iter(v)) for v in by_name.values()}) == 4
    pngs = sorted((tmp_path / "montages").glob("cluster_*.png"))
    assert len(pngs) == 4 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    code, _, err = run_cli("index", "cluster", tmp_path / "faces.index", "--method", "kmeans")
    assert code == 2 and "unknown clustering method" in err


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The astronaut photo (one face), a shifted copy, a photo with no face, and a face model for them."""
    import cv2
    from skimage.data import astronaut

    from facespace.models.pca import PCAAutoencoder
    from facespace.people.quality_reference import embedded_faces

    d = tmp_path_factory.mktemp("photos")
    astro = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    Image.fromarray(astro).save(d / "astro.png")
    shifted = np.zeros_like(astro)
    shifted[6:, 4:] = astro[:-6, :-4]
    Image.fromarray(shifted).save(d / "astro2.png")
    ramp = np.tile(np.linspace(40, 220, 256).astype(np.uint8)[None, :, None], (256, 1, 3))
    Image.fromarray(ramp).save(d / "noface.png")
    faces = embedded_faces((24, 24, 1))
    model = save_model(PCAAutoencoder(code_size=12).fit(faces[:50]), d / "pca.safetensors")
    from facespace.models.registry import load_model
    from facespace.people.quality_reference import quality_reference, save_quality_reference

    pca = load_model(model)  # faces 50-99, held out from the fit, are its quality reference
    save_quality_reference(pca, quality_reference(faces[50:], model=pca, source="held-out faces"))
    others = []
    for i in range(50, 56):  # another "person": embedded faces saved as files
        Image.fromarray((faces[i, :, :, 0] * 255).round().astype(np.uint8)).save(d / f"other{i}.png")
        others.append(d / f"other{i}.png")
    return {"dir": d, "model": model, "others": others}


def test_detect_enroll_identify_reject(run_cli, photos, tmp_path):
    d, m, g = photos["dir"], photos["model"], tmp_path / "g.db"
    code, out, err = run_cli("people", "enroll", "eileen", d / "astro.png", "--detect", "--model", m, "--gallery", g,
                             "--force")
    assert code == 0 and out.strip() == "eileen,1", err
    assert run_cli("people", "enroll", "other", *photos["others"], "--model", m, "--gallery", g, "--force")[0] == 0
    code, out, err = run_cli("people", "identify", d / "astro2.png", d / "noface.png", "--detect", "--model", m,
                             "--gallery", g, "--max-distance", "0.2")
    assert code == 0, err
    assert out.splitlines()[0] == "path,name,distance,quality,face,box,status"
    got = rows(out)
    assert [(r["name"], r["face"], r["status"]) for r in got] == [("eileen", "0", "ok"), ("unknown", "", "no_face")]
    x, y, w, h = map(int, got[0]["box"].split())
    assert abs(x + w / 2 - 116) < 16 and abs(y + h / 2 - 58) < 16  # the astronaut's face, shifted by (4, 6)
    assert 0.0 <= float(got[0]["quality"]) <= 1.0 and got[1]["quality"] == ""
    assert f"{d / 'noface.png'}: no face found" in flat(err)
    code, out, err = run_cli("people", "reject", d / "astro2.png", "eileen", "--detect", "--model", m, "--gallery", g)
    assert code == 0 and out.strip() == "eileen,1" and "is not eileen" in flat(err)
    again = rows(run_cli("people", "identify", d / "astro2.png", "--detect", "--model", m, "--gallery", g,
                         "--max-distance", "0.2")[1])
    assert again[0]["name"] != "eileen"
    code, _, err = run_cli("people", "reject", d / "noface.png", "eileen", "--detect", "--model", m, "--gallery", g)
    assert code == 2 and "no face found" in flat(err)
    code, _, err = run_cli("people", "enroll", "nobody", d / "noface.png", "--detect", "--model", m, "--gallery", g)
    assert code == 2 and "no face found" in flat(err) and "nobody" not in rows(run_cli("people", "list", "--gallery", g)[1])


def test_enroll_refuses_low_quality_unless_forced(run_cli, photos, tmp_path):
    m, g = photos["model"], tmp_path / "g.db"
    noisy = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24), dtype=np.uint8)).save(noisy)
    code, _, err = run_cli("people", "enroll", "ann", photos["others"][0], noisy, "--model", m, "--gallery", g)
    assert code == 2 and "refused for their quality" in flat(err) and "not face-like" in flat(err) and "--force" in flat(err)
    assert not g.exists() or rows(run_cli("people", "list", "--gallery", g)[1]) == []
    code, out, _ = run_cli("people", "enroll", "ann", photos["others"][0], noisy, "--model", m, "--gallery", g, "--force")
    assert code == 0 and out.strip() == "ann,2"
    code, out, err = run_cli("people", "quality", photos["others"][1], noisy, "--model", m)
    assert code == 0, err
    got = rows(out)
    assert [r["ok"] for r in got] == ["1", "0"] and float(got[0]["score"]) > float(got[1]["score"])
    assert got[0]["size"] == "24" and "not face-like" in got[1]["reasons"]


def test_verify_detect(run_cli, photos):
    d, m = photos["dir"], photos["model"]
    code, out, err = run_cli("people", "verify", "--model", m, d / "astro.png", d / "astro2.png", "--detect", "--max-distance", "0.2")
    assert code == 0, err
    r = json.loads(out)
    assert r["status"] == "ok" and r["same"] is True and r["face_a"] == 0 and len(r["box_b"]) == 4
    code, out, err = run_cli("people", "verify", "--model", m, d / "astro.png", d / "noface.png", "--detect", "--max-distance", "0.2")
    assert code == 0 and json.loads(out)["status"] == "no_face" and "no face found" in flat(err)


def test_identify_exported_codes(run_cli, world, tmp_path):
    m, g, people = world["model"], tmp_path / "g.db", world["portraits"]
    for name in ["P00", "P01", "P02"]:
        assert run_cli("people", "enroll", name, *people[name][:3], "--model", m, "--gallery", g)[0] == 0
    probes = [people["P01"][3], people["P06"][0]]
    code, _, err = run_cli("encode", *probes, "--model", m, "--out", tmp_path / "codes.csv")
    assert code == 0, err
    code, out, err = run_cli("people", "identify", "--codes", tmp_path / "codes.csv", "--gallery", g)
    assert code == 0, err
    from_images = rows(run_cli("people", "identify", *probes, "--model", m, "--gallery", g)[1])
    got = rows(out)
    assert [r["name"] for r in got] == [r["name"] for r in from_images] and got[0]["name"] == "P01"
    assert [r["path"] for r in got] == [str(p) for p in probes] and got[0]["quality"] == ""
    assert [float(r["distance"]) for r in got] == pytest.approx([float(r["distance"]) for r in from_images], abs=1e-5)
    other = save_model(TinyEncoder(TinyConfig(size=16, channels=1, seed=9)), tmp_path / "other.safetensors")
    assert run_cli("encode", *probes, "--model", other, "--out", tmp_path / "o.npy")[0] == 0
    code, _, err = run_cli("people", "identify", "--codes", tmp_path / "o.npy", "--gallery", g)
    assert code == 2 and "another model" in flat(err)
