"""CLI commands decode, calibrate and explain (and the stored thresholds verify and identify use)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facespace.models.registry import load_model, save_model
from facespace.pipelines.codes import decode
from facespace.grid import make_grid
from facespace.models.pca import PCAAutoencoder

SIDE = 16


@pytest.fixture(scope="module")
def faces():
    from facespace.data import load_faces

    return load_faces("embedded", size=SIDE, progress=False)


@pytest.fixture(scope="module")
def files(faces, tmp_path_factory):
    """A PCA checkpoint, another one, an encoder-only checkpoint, an index, a gallery and face files."""
    from people_helpers import TinyConfig, TinyEncoder

    from facespace.people.gallery.gallery import Gallery
    from facespace.pipelines.indexing import build_index

    d = tmp_path_factory.mktemp("extras")
    x = np.asarray(faces.images[:100])
    save_model(PCAAutoencoder(code_size=8).fit(x), d / "pca.safetensors")
    save_model(PCAAutoencoder(code_size=8).fit(x[:50]), d / "other.safetensors")
    save_model(TinyEncoder(TinyConfig(size=SIDE, channels=3)), d / "encoder.safetensors")
    model = load_model(d / "pca.safetensors")
    build_index(model, faces, progress=None).save(d / "faces.index")
    with Gallery(d / "people.db", model) as g:
        g.enroll_many({"Ann": x[:3], "Bob": x[10:14]}, force=True)
    for i in (0, 1, 2, 10):
        Image.fromarray((x[i] * 255).round().astype(np.uint8)).save(d / f"face{i}.png")
    return d


def _picture(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# --- decode ---


def test_decode_index_items(files, run_cli):
    code, out, err = run_cli("generate", "decode", "--model", files / "pca.safetensors", "--index", files / "faces.index", "--id", 3, "--id", 7,
                             "--out", files / "dec.png", "--scale", 1, "--ncols", 2)
    assert code == 0, err
    assert json.loads(out) == {"model": str(files / "pca.safetensors"), "out": str(files / "dec.png"), "n": 2, "source": "index", "items": ["id 3", "id 7"]}
    from facespace.index import Index

    model = load_model(files / "pca.safetensors")
    want = decode(model, Index.load(files / "faces.index").reconstruct([3, 7]))
    np.testing.assert_array_equal(_picture(files / "dec.png"), make_grid(want, ncols=2, scale=1))


def test_decode_gallery_person(files, faces, run_cli):
    code, out, err = run_cli("generate", "decode", "--model", files / "pca.safetensors", "--gallery", files / "people.db", "--name", "Bob",
                             "--out", files / "bob.png", "--scale", 1, "--ncols", 4)
    assert code == 0, err
    assert json.loads(out)["items"] == ["Bob"] * 4
    model = load_model(files / "pca.safetensors")
    want = decode(model, model.encode(np.asarray(faces.images[10:14])))  # what was enrolled, decoded
    np.testing.assert_array_equal(_picture(files / "bob.png"), make_grid(want, ncols=4, scale=1))
    code, out, _ = run_cli("generate", "decode", "--model", files / "pca.safetensors", "--gallery", files / "people.db", "--out", files / "all.png")
    assert code == 0 and json.loads(out)["n"] == 7


def test_decode_exported_codes(files, faces, run_cli):
    export = pytest.importorskip("facespace.pipelines.export.write")
    model = load_model(files / "pca.safetensors")
    z = model.encode(np.asarray(faces.images[:5]))
    export.save_codes(z, files / "codes.npy", sources=[f"f{i}.png" for i in range(5)], names=["a", None, "c", "d", "e"],
                      model=model)
    code, out, err = run_cli("generate", "decode", "--model", files / "pca.safetensors", "--codes", files / "codes.npy", "--row", 1, "--row", 4,
                             "--out", files / "rows.png", "--scale", 1, "--ncols", 2)
    assert code == 0, err
    assert json.loads(out)["items"] == ["f1.png", "e"]
    np.testing.assert_array_equal(_picture(files / "rows.png"), make_grid(decode(model, z[[1, 4]]), ncols=2, scale=1))
    code, _, err = run_cli("generate", "decode", "--model", files / "other.safetensors", "--codes", files / "codes.npy", "--out", files / "x.png")
    assert code == 2 and "another model" in err
    code, _, err = run_cli("generate", "decode", "--model", files / "pca.safetensors", "--codes", files / "codes.npy", "--row", 9, "--out", files / "x.png")
    assert code == 2 and "row(s) [9] not in" in err


@pytest.mark.parametrize("args, message", [
    (["--index", "faces.index", "--id", "99999"], "are not in the index"),
    (["--index", "faces.index"], "--id"),
    (["--gallery", "people.db", "--name", "Zed"], "'Zed' not enrolled"),
    ([], "exactly one source"),
    (["--index", "faces.index", "--id", "1", "--gallery", "people.db"], "exactly one source"),
])
def test_decode_bad_input(files, run_cli, args, message):
    args = [str(files / a) if a.endswith((".index", ".db")) else a for a in args]
    code, out, err = run_cli("generate", "decode", "--model", files / "pca.safetensors", *args, "--out", files / "bad.png")
    assert code == 2 and message in err and out == ""
    assert not (files / "bad.png").exists()


def test_decode_refuses_another_model_and_no_decoder(files, run_cli):
    code, _, err = run_cli("generate", "decode", "--model", files / "other.safetensors", "--index", files / "faces.index", "--id", 1, "--out", files / "x.png")
    assert code == 2 and "built with another model" in err
    code, _, err = run_cli("generate", "decode", "--model", files / "other.safetensors", "--gallery", files / "people.db", "--out", files / "x.png")
    assert code == 2 and "another model" in err
    code, _, err = run_cli("generate", "decode", "--model", files / "encoder.safetensors", "--index", files / "faces.index", "--id", 1, "--out", files / "x.png")
    assert code == 2 and "'tiny_people_test' model has no decoder" in err


# --- calibrate: stored where verify and identify read it ---


def _line_image(t: float) -> np.ndarray:
    """16x16 grey `base + t * u`, `||u|| = 1`: l2 distances between these are `|t1 - t2|`."""
    rng = np.random.default_rng(7)
    base = rng.uniform(0.35, 0.65, (SIDE, SIDE, 1))
    u = np.where(rng.random((SIDE, SIDE, 1)) < 0.5, -1.0, 1.0) / SIDE
    return (base + t * u).astype(np.float32)


def _write(path, t: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((_line_image(t)[..., 0] * 255).round().astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def line_people(tmp_path_factory):
    root = tmp_path_factory.mktemp("line")
    for name, ts in {"Ann": [0.10, 0.15], "Bob": [1.32, 1.40], "Cat": [0.30, 0.45]}.items():
        for k, t in enumerate(ts):
            _write(root / "people" / name / f"{k}.png", t)
    _write(root / "probe_ann.png", 0.25)  # 0.23 from Ann's enrolled faces
    _write(root / "probe_bob.png", 1.45)  # 0.43 from Bob's
    return root


def test_calibrate_stores_the_threshold_that_verify_uses(files, run_cli):
    model = files / "pca.safetensors"
    code, _, err = run_cli("people", "verify", "--model", model, files / "face0.png", files / "face1.png")
    assert code == 2 and "no calibrated verification threshold" in err
    (files / "pairs.csv").write_text("path_a,path_b,same\nface0.png,face1.png,1\nface0.png,face2.png,1\n"
                                     "face0.png,face10.png,0\nface1.png,face10.png,0\n")
    code, out, err = run_cli("people", "calibrate", "--model", model, "--pairs", files / "pairs.csv", "--best-accuracy",
                             "--curves", files / "curves.png")
    assert code == 0, err
    result = json.loads(out)
    assert result["n_pairs"] == 4 and result["n_same"] == 2 and result["stored_in"] == str(model)
    with Image.open(files / "curves.png") as im:
        assert im.format == "PNG"
    code, out, err = run_cli("people", "verify", "--model", model, files / "face0.png", files / "face1.png")
    assert code == 0, err
    verdict = json.loads(out)
    assert verdict["threshold"] == pytest.approx(result["threshold"], abs=1e-6)
    assert verdict["same"] == (verdict["distance"] <= result["threshold"])


def test_calibrate_gallery_per_person_is_used_by_identify(line_people, run_cli, tmp_path):
    from facespace.people.gallery.gallery import Gallery
    from facespace.models.pixels import PixelEncoder

    db = tmp_path / "line.db"
    with Gallery(db, PixelEncoder(size=SIDE, channels=1), metric="l2") as g:
        g.enroll_many({"Ann": np.stack([_line_image(0.0), _line_image(0.02)]),
                       "Bob": np.stack([_line_image(1.0), _line_image(1.02)])}, force=True)
    probes = [line_people / "probe_ann.png", line_people / "probe_bob.png"]
    code, out, err = run_cli("people", "calibrate", "--model", "pixels:16:grey", "--folder", line_people / "people", "--gallery", db,
                             "--per-person", "--best-accuracy", "--curves", tmp_path / "c.png")
    assert code == 0, err
    result = json.loads(out)
    assert result["threshold"] == pytest.approx(0.405, abs=0.02) and result["stored_in"] == str(db)
    assert set(result["per_person"]) == {"Ann", "Bob"}
    code, out, err = run_cli("people", "identify", *probes, "--model", "pixels:16:grey", "--gallery", db)
    assert code == 0, err
    assert [line.split(",")[1] for line in out.splitlines()[1:]] == ["unknown", "Bob"]  # per-person thresholds
    code, out, _ = run_cli("people", "identify", *probes, "--model", "pixels:16:grey", "--gallery", db,
                           "--max-distance", result["threshold"])
    assert [line.split(",")[1] for line in out.splitlines()[1:]] == ["Ann", "unknown"]  # the global one


def test_calibrate_dry_run_stores_nothing(line_people, run_cli, tmp_path):
    code, out, err = run_cli("people", "calibrate", "--model", "pixels:16:grey", "--folder", line_people / "people", "--dry-run",
                             "--metric", "l2", "--target-far", "0", "--curves", tmp_path / "c.png")
    assert code == 0, err
    assert json.loads(out)["stored_in"] is None and json.loads(out)["far"] == 0.0


@pytest.mark.parametrize("make, args, message", [
    (None, [], "--pairs FILE or identities with --folder"),
    ("one", ["--folder", "{d}/one"], "at least two people"),
    ("empty", ["--pairs", "{d}/empty.csv"], "empty pairs file"),
    ("bad", ["--pairs", "{d}/bad.csv"], "'same' must be"),
    ("one", ["--folder", "{d}/one", "--per-person"], "--per-person thresholds are stored in a gallery"),
    ("one", ["--folder", "{d}/one", "--target-far", "1.5"], "--target-far must be in [0, 1)"),
])
def test_calibrate_bad_input(files, run_cli, tmp_path, make, args, message):
    if make == "one":
        _write(tmp_path / "one" / "Ann" / "1.png", 0.0)
        _write(tmp_path / "one" / "Ann" / "2.png", 0.1)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bad.csv").write_text("a.png,b.png,perhaps\n")
    before = (files / "pca.safetensors").read_bytes()
    code, out, err = run_cli("people", "calibrate", "--model", files / "pca.safetensors", *[a.format(d=tmp_path) for a in args],
                             "--curves", tmp_path / "c.png")
    assert code == 2 and message in err and out == ""
    assert (files / "pca.safetensors").read_bytes() == before and not (tmp_path / "c.png").exists()


# --- explain ---


def test_explain_writes_the_picture_and_a_json_line(files, run_cli):
    code, out, err = run_cli("people", "explain", "--model", files / "pca.safetensors", files / "face0.png", files / "face10.png",
                             "--out", files / "ex.png", "--scale", 2)
    assert code == 0, err
    r = json.loads(out)
    assert r["decoder"] is True and r["distance"] > 0 and r["heat_max"] > 0 and r["out"] == str(files / "ex.png")
    pic = _picture(files / "ex.png")
    assert pic.shape[1] == 5 * (32 + 2) + 2 and pic.shape[0] > 36  # five tiles and a caption band
    code, out, _ = run_cli("people", "explain", "--model", files / "pca.safetensors", files / "face0.png", files / "face0.png",
                           "--out", files / "same.png")
    assert code == 0 and json.loads(out)["distance"] == 0.0 and json.loads(out)["heat_max"] == 0.0


def test_explain_detect(files, run_cli, tmp_path):
    import cv2
    from skimage.data import astronaut

    astro = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    Image.fromarray(astro).save(tmp_path / "astro.png")
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(tmp_path / "wall.png")
    code, out, err = run_cli("people", "explain", "--model", files / "pca.safetensors", tmp_path / "astro.png", tmp_path / "astro.png",
                             "--detect", "--out", tmp_path / "ex.png")
    assert code == 0, err
    assert json.loads(out)["distance"] == 0.0
    code, out, err = run_cli("people", "explain", "--model", files / "pca.safetensors", tmp_path / "astro.png", tmp_path / "wall.png",
                             "--detect", "--out", tmp_path / "ex2.png")
    assert code == 2 and f"no face found in {tmp_path / 'wall.png'}" in err and out == ""
    assert not (tmp_path / "ex2.png").exists()
