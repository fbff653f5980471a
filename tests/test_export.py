"""Embeddings out and in: `facespace.pipelines.export.write` formats, `facespace encode`, and search/index from codes alone."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from facespace.pipelines.export.formats import FORMAT_VERSION, ExportError, sidecar_path
from facespace.pipelines.export.read import load_codes
from facespace.pipelines.export.write import save_codes

SUFFIXES = (".npy", ".csv", ".parquet")
WEIRD = ["a,b.jpg", 'q"uo\'te.png', "ünï/cødé 顔.jpg", "line\r\nbreak.jpg", "plain"]
NAMES = ["Ann", None, 'Bé, "x" <y>', None, "z"]
PEOPLE = ("Ann_Ames", "Bo_Berg", "Cy_Cole")


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((5, 7)) * 1e-3).astype(np.float32)
    z[0, 0], z[1, 1], z[2, 2] = np.float32(3.4e38), np.float32(-1.17e-38), np.float32(1 / 3)  # extremes and a repeating fraction
    return z


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Folder `people/<Name>/<Name>_000k.png` (3 x 4 small faces from lfw_subset), two PCA models, photos."""
    import cv2
    from PIL import Image
    from skimage.data import astronaut, lfw_subset

    from facespace.models.registry import save_model
    from facespace.data import load_faces
    from facespace.models.pca import PCAAutoencoder

    root = tmp_path_factory.mktemp("export")
    faces = lfw_subset()[:12]
    for i, face in enumerate(faces):
        name = PEOPLE[i // 4]
        (root / "people" / name).mkdir(parents=True, exist_ok=True)
        img = Image.fromarray((face * 255).astype(np.uint8)).resize((48, 48), Image.BILINEAR).convert("RGB")
        img.save(root / "people" / name / f"{name}_{i % 4 + 1:04d}.png")
    train = load_faces("embedded", size=32).images
    save_model(PCAAutoencoder(code_size=8).fit(train), root / "pca.safetensors")
    save_model(PCAAutoencoder(code_size=8).fit(train[::-1][:150]), root / "other.safetensors")
    astro = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    Image.fromarray(astro).save(root / "astro.png")
    Image.fromarray(np.full((200, 200, 3), 180, np.uint8)).save(root / "blank.png")
    return root


def rows(text):
    return list(csv.reader(io.StringIO(text)))


# ---- the formats


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("detected", [False, True])
def test_round_trip_is_bit_exact_with_awkward_paths_and_names(tmp_path, codes, suffix, detected):
    boxes = [(1, 2, 30, 40), None, (5, 6, 7, 8), (0, 0, 1, 1), None] if detected else None
    record = {"hash": "abc", "weights_hash": "def", "kind": "pca", "path": "/m/pca.safetensors", "code_size": 7}
    path = tmp_path / f"codes{suffix}"
    save_codes(codes, path, sources=WEIRD, names=NAMES, model=record, boxes=boxes, faces=[0, 0, 1, 0, 0])
    back = load_codes(path)
    assert back.codes.dtype == np.float32 and back.codes.tobytes() == codes.tobytes()
    assert back.sources == WEIRD and back.names == NAMES and back.model == record
    if detected:
        assert back.boxes == boxes and back.faces == [0, 0, 1, 0, 0]
        assert back.labels()[2] == f"{WEIRD[2]}#1" and back.metadata()[0]["box"] == [1, 2, 30, 40]
    else:
        assert back.boxes == [None] * 5 and back.labels() == WEIRD
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind


def test_csv_is_plain_and_its_header_names_the_columns(tmp_path, codes):
    save_codes(codes, tmp_path / "c.csv", sources=WEIRD, names=NAMES)
    table = rows((tmp_path / "c.csv").read_bytes().decode("utf-8"))
    assert table[0] == ["path", "name"] + [f"z{j}" for j in range(7)]
    assert [r[0] for r in table[1:]] == WEIRD and table[2][1] == ""
    assert json.loads(sidecar_path(tmp_path / "c.csv").read_text())["format_version"] == FORMAT_VERSION


def test_a_csv_from_another_tool_loads_without_a_sidecar(tmp_path):
    (tmp_path / "theirs.csv").write_text("path,name,z0,z1\nx.jpg,Ann,1.5,-2\ny.jpg,,0,0.25\n")
    back = load_codes(tmp_path / "theirs.csv")
    assert back.codes.tolist() == [[1.5, -2.0], [0.0, 0.25]] and back.names == ["Ann", None] and back.model is None


def test_unknown_suffix_names_the_three_formats(tmp_path, codes):
    for call in (lambda: save_codes(codes, tmp_path / "c.txt", sources=WEIRD, names=None),
                 lambda: load_codes(tmp_path / "c.h5")):
        with pytest.raises(ExportError, match=r"\.npy, \.csv, \.parquet"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_bad_codes_and_lists_are_refused_and_nothing_is_written(tmp_path, codes):
    bad = codes.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ExportError, match="NaN"):
        save_codes(bad, tmp_path / "c.npy", sources=WEIRD, names=None)
    with pytest.raises(ExportError, match=r"\(n, d\)"):
        save_codes(codes[0], tmp_path / "c.npy", sources=WEIRD[:1], names=None)
    with pytest.raises(ExportError, match="sources has 4 entries for 5 codes"):
        save_codes(codes, tmp_path / "c.npy", sources=WEIRD[:4], names=None)
    with pytest.raises(ExportError, match="boxes"):
        save_codes(codes, tmp_path / "c.npy", sources=WEIRD, names=None, boxes=[(1, 2, 3)] * 5)
    assert list(tmp_path.iterdir()) == []


def test_truncated_foreign_and_mismatched_files_are_refused(tmp_path, codes):
    npy = tmp_path / "c.npy"
    save_codes(codes, npy, sources=WEIRD, names=NAMES)
    whole = npy.read_bytes()
    npy.write_bytes(whole[: len(whole) - 9])
    with pytest.raises(ExportError, match="truncated"):
        load_codes(npy)
    np.save(npy, codes[:4])  # another export's rows beside this sidecar
    with pytest.raises(ExportError, match="different exports"):
        load_codes(npy)
    changed = codes.copy()
    changed[0, 1] += 1
    np.save(npy, changed)
    with pytest.raises(ExportError, match="checksum"):
        load_codes(npy)
    sidecar_path(npy).unlink()
    with pytest.raises(ExportError, match="sidecar"):
        load_codes(npy)
    with pytest.raises(ExportError, match="no such codes file"):
        load_codes(tmp_path / "missing.npy")

    side = tmp_path / "v.npy"
    save_codes(codes, side, sources=WEIRD, names=NAMES)
    meta = json.loads(sidecar_path(side).read_text())
    sidecar_path(side).write_text(json.dumps({**meta, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ExportError, match="upgrade facespace"):
        load_codes(side)

    pq = tmp_path / "c.parquet"
    save_codes(codes, pq, sources=WEIRD, names=NAMES)
    pq.write_bytes(pq.read_bytes()[:-20])
    with pytest.raises(ExportError, match="not a readable Parquet"):
        load_codes(pq)
    import pyarrow as pa
    import pyarrow.parquet as pq_mod

    pq_mod.write_table(pa.table({"a": [1, 2]}), tmp_path / "foreign.parquet")
    with pytest.raises(ExportError, match="not a facespace codes file"):
        load_codes(tmp_path / "foreign.parquet")

    c = tmp_path / "c.csv"
    c.write_text("id,vector\n1,2\n")
    with pytest.raises(ExportError, match="path,name,z0"):
        load_codes(c)
    c.write_text("path,name,z0,z1\nx.jpg,,1.0\n")
    with pytest.raises(ExportError, match="line 2 has 3 fields"):
        load_codes(c)
    c.write_text("path,name,z0,z1\nx.jpg,,1.0,abc\n")
    with pytest.raises(ExportError, match="not a number"):
        load_codes(c)


def test_a_model_object_is_recorded_with_an_absolute_path(data, tmp_path, monkeypatch):
    from facespace.checkpoint import file_hash
    from facespace.models.registry import load_model

    monkeypatch.chdir(data)
    model = load_model("pca.safetensors")
    save_codes(np.zeros((1, 8), np.float32), tmp_path / "c.parquet", sources=["x"], names=None, model=model)
    rec = load_codes(tmp_path / "c.parquet").model
    assert rec["hash"] == file_hash(data / "pca.safetensors") and rec["path"] == str(data / "pca.safetensors")


# ---- facespace encode, and search / index / cluster from codes alone


def test_encode_index_search_from_codes_gives_the_image_path_neighbours(data, run_cli, tmp_path):
    model, folder = data / "pca.safetensors", data / "people"
    code, out, err = run_cli("encode", folder, "--model", model, "--out", tmp_path / "codes.npy")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["count"] == 12 and summary["dim"] == 8 and summary["no_face"] == 0
    exported = load_codes(tmp_path / "codes.npy")
    assert sorted(set(exported.names)) == list(PEOPLE) and all(s.endswith(".png") for s in exported.sources)

    assert run_cli("index", "build", "--codes", tmp_path / "codes.npy", "--out", tmp_path / "c.index")[0] == 0
    assert run_cli("index", "build", folder, "--model", model, "--out", tmp_path / "i.index")[0] == 0
    query = str(folder / "Bo_Berg" / "Bo_Berg_0002.png")
    code, by_codes, err = run_cli("index", "search", tmp_path / "c.index", "--codes", tmp_path / "codes.npy", "-k", "4")
    assert code == 0, err
    _, by_images, _ = run_cli("index", "search", tmp_path / "i.index", *exported.sources, "-k", "4")
    a, b = rows(by_codes), rows(by_images)
    assert len(a) == len(b) == 1 + 12 * 4
    assert [r[2] for r in a[1:]] == [r[2] for r in b[1:]]  # the same neighbours, in the same order
    np.testing.assert_allclose([float(r[4]) for r in a[1:]], [float(r[4]) for r in b[1:]], atol=1e-5)
    # an index built from codes still knows its model: image queries work and are checked
    code, out, err = run_cli("index", "search", tmp_path / "c.index", query, "-k", "1")
    assert code == 0 and rows(out)[1][2] == query, err
    code, _, err = run_cli("index", "search", tmp_path / "c.index", query, "--model", data / "other.safetensors")
    assert code == 2 and "another model" in err
    code, _, err = run_cli("index", "cluster", tmp_path / "c.index", "--method", "agglomerative", "--n-clusters", "3",
                           "--out", tmp_path / "clusters.csv")
    assert code == 0, err
    assert len(rows((tmp_path / "clusters.csv").read_text())) == 13


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_search_refuses_codes_of_another_model(data, run_cli, tmp_path, suffix):
    run_cli("encode", data / "people", "--model", data / "pca.safetensors", "--out", tmp_path / "a.npy")
    run_cli("index", "build", "--codes", tmp_path / "a.npy", "--out", tmp_path / "a.index")
    other = tmp_path / f"b{suffix}"
    code, _, err = run_cli("encode", data / "people", "--model", data / "other.safetensors", "--out", other)
    assert code == 0, err
    code, out, err = run_cli("index", "search", tmp_path / "a.index", "--codes", other)
    assert code == 2 and "another model" in err and out == ""
    before = (tmp_path / "a.index").read_bytes()
    code, out, err = run_cli("index", "add", tmp_path / "a.index", "--codes", other)
    assert code == 2 and "another model" in err and (tmp_path / "a.index").read_bytes() == before
    code, out, err = run_cli("index", "add", tmp_path / "a.index", "--codes", tmp_path / "a.npy")
    assert code == 2 and "already in" in err  # the index's own model, but the same items again (#27.11)
    code, out, err = run_cli("index", "add", tmp_path / "a.index", "--codes", tmp_path / "a.npy", "--skip-existing")
    assert code == 0 and json.loads(out)["count"] == 12 and json.loads(out)["skipped"] == 12, err


def test_encode_detect_one_row_per_face_and_reports_photos_without_one(data, run_cli, tmp_path):
    out_file = tmp_path / "faces.parquet"
    code, out, err = run_cli("encode", data / "astro.png", data / "blank.png", "--detect",
                             "--model", data / "pca.safetensors", "--out", out_file)
    assert code == 0, err
    assert json.loads(out)["count"] == 1 and json.loads(out)["no_face"] == 1 and json.loads(out)["images"] == 2
    assert f"no face found in {data / 'blank.png'}" in err.replace("\n", "")
    back = load_codes(out_file)
    x, y, w, h = back.boxes[0]
    assert back.sources == [str(data / "astro.png")] and back.faces == [0]
    assert abs(x + w / 2 - 112.5) < 14 and abs(y + h / 2 - 52.5) < 14  # the astronaut's face
    # the row's code is the code of the detected crop
    from facespace.models.registry import load_model
    from facespace.photos.faces import crops_from_photos

    crops = crops_from_photos([data / "astro.png"], size=32, detect=True)
    np.testing.assert_allclose(back.codes, load_model(data / "pca.safetensors").encode(crops.images), atol=1e-5)


def test_encode_bad_input_exits_2_and_writes_nothing(data, run_cli, tmp_path):
    code, _, err = run_cli("encode", data / "people", "--model", data / "pca.safetensors", "--out", tmp_path / "c.txt")
    assert code == 2 and ".npy, .csv, .parquet" in err
    code, _, err = run_cli("encode", data / "blank.png", "--detect", "--model", data / "pca.safetensors",
                           "--out", tmp_path / "c.npy")
    assert code == 2 and "no face found" in err
    code, _, err = run_cli("encode", data / "nowhere", "--model", data / "pca.safetensors", "--out", tmp_path / "c.npy")
    assert code == 2 and "nowhere" in err
    assert list(tmp_path.iterdir()) == []
    code, _, err = run_cli("index", "build", "--codes", tmp_path / "none.npy", "--out", tmp_path / "x.index")
    assert code == 2 and "no such codes file" in err
    code, _, err = run_cli("index", "build", data / "pca.safetensors", "--codes", tmp_path / "none.npy", "--out", tmp_path / "x.index")
    assert code == 2 and "not both" in err
    assert list(tmp_path.iterdir()) == []


def test_encode_embedded_to_csv(data, run_cli, tmp_path):
    code, out, err = run_cli("encode", "embedded", "--model", data / "pca.safetensors", "--out", tmp_path / "e.csv",
                             "--batch-size", "64")
    assert code == 0, err
    back = load_codes(tmp_path / "e.csv")
    assert back.codes.shape == (200, 8) and back.sources[0].startswith("embedded:")
    from facespace.models.registry import load_model
    from facespace.data import load_faces

    expected = load_model(data / "pca.safetensors").encode(load_faces("embedded", size=32).images)
    np.testing.assert_allclose(back.codes, expected, atol=1e-4)  # batches of 64 round differently from one of 200


def test_file_names_that_are_not_utf8_round_trip(tmp_path, run_cli):
    """#27.5: a Latin-1 file name (b'caf\\xe9.png') is exported, enrolled and grouped without a crash, and
    every export reads back the path that opens the file (the .npy and its sidecar appear together)."""
    import os

    from PIL import Image

    from facespace.pipelines.export.read import load_codes

    folder = tmp_path / "d"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in (b"caf\xe9.png", b"ok.png"):
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(os.path.join(os.fsencode(folder), name))
    for suffix in (".csv", ".npy", ".parquet"):
        out = tmp_path / f"codes{suffix}"
        code, _, err = run_cli("encode", folder, "--model", "pixels:8", "--crop", "none", "--out", out)
        assert code == 0, err
        sources = load_codes(out).sources
        assert len(sources) == 2 and all(os.path.exists(s) for s in sources), suffix
        assert any(os.fsencode(s).endswith(b"caf\xe9.png") for s in sources)
    code, _, err = run_cli("people", "enroll", "ann", folder, "--model", "pixels:8", "--crop", "none",
                           "--gallery", tmp_path / "g.db", "--force")
    assert code == 0, err
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "facespace.cli", "groups", "add", str(folder), "--model", "pixels:8",
                           "--crop", "none", "--gallery", str(tmp_path / "g2.db")], capture_output=True)
    assert done.returncode == 0 and b"caf\xe9.png" in done.stdout, done.stderr  # the name's own bytes, as ls shows
    from facespace.people.groups.groups import FaceGroups

    with FaceGroups(tmp_path / "g2.db") as g:
        assert all(os.path.exists(src) for _, src, _, _ in g.faces())
