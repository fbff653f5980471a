"""Search by image, near-duplicates, and the `index` / `search` / `duplicates` commands."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest

from facespace.index import Index, IndexingError
from facespace.pipelines.indexing import build_index
from facespace.pipelines.retrieval import find_duplicates, search

PEOPLE = ("Ann_Ames", "Bo_Berg", "Cy_Cole")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """A folder of 12 small faces-like PNGs (3 people x 4) plus one exact copy, a PCA model file."""
    from PIL import Image

    from facespace.models.registry import load_model, save_model
    from facespace.data import load_faces
    from facespace.models.pca import PCAAutoencoder

    root = tmp_path_factory.mktemp("gallery")
    rng = np.random.default_rng(3)
    for p, name in enumerate(PEOPLE):
        base = rng.random((8, 8, 3))
        (root / "people" / name).mkdir(parents=True)
        for i in range(4):
            img = np.kron(np.clip(base + 0.15 * rng.standard_normal((8, 8, 3)), 0, 1), np.ones((4, 4, 1)))
            Image.fromarray((img * 255).astype(np.uint8)).save(root / "people" / name / f"{name}_{i + 1:04d}.png")
    (root / "people" / "Dup_Copy").mkdir()
    shutil.copy(root / "people" / "Ann_Ames" / "Ann_Ames_0001.png", root / "people" / "Dup_Copy" / "Dup_Copy_0001.png")
    faces = load_faces(root / "people", size=32, progress=False, workers=1)
    pca = PCAAutoencoder(code_size=6).fit(faces.images)
    save_model(pca, root / "pca.safetensors")
    other = PCAAutoencoder(code_size=6).fit(faces.images[::-1][:9])
    save_model(other, root / "other.safetensors")
    return {
        "root": root,
        "folder": root / "people",
        "faces": faces,
        "model": load_model(root / "pca.safetensors"),
        "model_path": root / "pca.safetensors",
        "other_path": root / "other.safetensors",
        "memory_model": pca,
    }


@pytest.fixture(scope="module")
def index(gallery):
    return build_index(gallery["model_path"], gallery["faces"], metric="l2")


def test_build_index_records_paths_names_and_the_model(gallery, index):
    from facespace.checkpoint import file_hash

    assert len(index) == 13 and index.dim == 6
    meta = index.get_metadata(index.ids)
    assert sorted({m["name"] for m in meta}) == sorted(PEOPLE + ("Dup_Copy",))
    assert index.model["hash"] == file_hash(gallery["model_path"])
    assert index.model["path"] == str(gallery["model_path"])


def test_search_by_image_finds_the_image_itself_first(gallery, index):
    faces = gallery["faces"]
    paths = [str(p) for p in faces.paths[:5]]
    hits = search(index, paths, k=3)  # through the model file the index records
    assert len(hits) == 5 and all(len(h) == 3 for h in hits)
    for path, row in zip(paths, hits):
        assert [h["rank"] for h in row] == [1, 2, 3]
        assert row[0]["distance"] < 1e-4
        # the exact copy is at distance 0 too, so the top hit is the file or its copy
        assert row[0]["path"] == path or "Dup_Copy" in row[0]["path"] or "Dup_Copy" in path
    by_array = search(index, faces.images[:5], k=3, model=gallery["model"])
    assert [r[0]["id"] for r in by_array] == [r[0]["id"] for r in hits]


def test_same_person_ranks_above_others(gallery, index):
    faces = gallery["faces"]
    hits = search(index, faces.images, k=2, model=gallery["model"])
    same = [row[1]["name"] == n or {row[1]["name"], n} == {"Ann_Ames", "Dup_Copy"} for row, n in zip(hits, faces.names)]
    assert np.mean(same) >= 0.9


def test_a_model_kept_in_memory_is_recognised_and_another_is_refused(gallery, tmp_path):
    from facespace.models.registry import load_model, save_model

    memory = gallery["memory_model"]
    idx = build_index(memory, gallery["faces"])
    assert idx.model["hash"] is None and idx.model["weights_hash"]
    assert search(idx, gallery["faces"].images[:1], k=1, model=memory)[0][0]["id"] == 0
    save_model(memory, tmp_path / "again.safetensors")  # the same weights, saved later
    search(idx, gallery["faces"].images[:1], k=1, model=load_model(tmp_path / "again.safetensors"))
    with pytest.raises(IndexingError, match="built with another model"):
        search(idx, gallery["faces"].images[:1], k=1, model=gallery["other_path"])


def test_pure_vector_index_searches_codes_but_refuses_images(gallery):
    idx = Index(6, metric="l2")
    idx.add(np.eye(6, dtype=np.float32))
    assert search(idx, np.eye(6, dtype=np.float32)[2:3], k=1)[0][0]["id"] == 2
    with pytest.raises(IndexingError, match="plain vectors"):
        search(idx, gallery["faces"].images[:1], k=1, model=gallery["model"])


def test_search_refuses_an_empty_index_and_a_k_too_large(index):
    with pytest.raises(IndexingError, match="empty"):
        search(Index(6), np.zeros((1, 6), np.float32), k=1)
    with pytest.raises(IndexingError, match="k=14 is larger than the index"):
        search(index, np.zeros((1, 6), np.float32), k=14)


@pytest.mark.parametrize("backend", ["exact", "hnsw", "lsh"])
def test_find_duplicates_groups_chains(backend):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 8)).astype(np.float32) * 5
    far = rng.standard_normal((30, 8)).astype(np.float32) * 5
    x = np.vstack([a, a + 0.01, a + 0.02, b, b + 0.01, far])  # a chain of three, a pair, strangers
    idx = Index(8, metric="l2", backend=backend)
    idx.add(x, ids=np.arange(100, 100 + len(x)))
    assert find_duplicates(idx, max_distance=0.015 * np.sqrt(8)) == [[100, 101, 102], [103, 104]]
    assert find_duplicates(idx, max_distance=0.0) == []
    with pytest.raises(IndexingError, match="max_distance"):
        find_duplicates(idx, max_distance=-1)


def test_find_duplicates_follows_neighbours_beyond_k():
    x = np.repeat(np.eye(4, dtype=np.float32), 5, axis=0)  # four groups of five identical vectors
    idx = Index(4, metric="cosine")
    idx.add(x)
    groups = find_duplicates(idx, max_distance=1e-6, k=2)
    assert groups == [list(range(i, i + 5)) for i in range(0, 20, 5)]


# ---- the command line


def rows(text):
    return list(csv.reader(io.StringIO(text)))


def test_cli_build_info_search_montage_add_remove_duplicates(gallery, run_cli, tmp_path):
    idx = tmp_path / "faces.index"
    code, out, err = run_cli("index", "build", gallery["folder"], "--model", gallery["model_path"], "--out", idx,
                             "--backend", "hnsw", "--set", "ef_search=32", "--set", "threads=1")
    assert code == 0, err
    assert json.loads(out)["count"] == 13 and idx.exists()
    code, out, _ = run_cli("index", "info", idx)
    info = json.loads(out)
    assert code == 0 and info["backend"] == "hnsw" and info["settings"]["ef_search"] == 32 and info["dim"] == 6

    query = str(gallery["folder"] / "Bo_Berg" / "Bo_Berg_0002.png")
    code, out, err = run_cli("index", "search", idx, query, "-k", "3", "--montage", tmp_path / "m.png")
    assert code == 0, err
    table = rows(out)
    assert table[0] == ["query", "rank", "path", "name", "distance"]
    assert [r[1] for r in table[1:]] == ["1", "2", "3"]
    assert table[1][2].endswith("Bo_Berg_0002.png") and table[1][3] == "Bo_Berg" and float(table[1][4]) < 1e-3
    from PIL import Image

    assert Image.open(tmp_path / "m.png").size[0] > 4 * 64

    new = tmp_path / "new.png"
    shutil.copy(query, new)
    code, out, err = run_cli("index", "add", idx, new)
    assert code == 0, err
    assert json.loads(out)["count"] == 14
    code, out, _ = run_cli("index", "duplicates", idx, "--max-distance", "0.0001")
    groups = rows(out)
    assert code == 0 and groups[0] == ["group", "id", "path", "name"]
    assert sorted(len([r for r in groups[1:] if r[0] == g]) for g in {r[0] for r in groups[1:]}) == [2, 2]

    code, out, err = run_cli("index", "remove", idx, "--path", str(new))
    assert code == 0, err
    assert json.loads(out) == {"removed": 1, "count": 13}
    code, out, _ = run_cli("index", "remove", idx, "0")
    assert code == 0 and json.loads(out)["count"] == 12
    code, out, _ = run_cli("index", "search", idx, query, "-k", "12")
    assert code == 0
    found = [r[2] for r in rows(out)[1:]]
    assert len(found) == 12 and str(new) not in found and not any(p.endswith("Ann_Ames_0001.png") for p in found)


def test_cli_errors_exit_2_with_a_message(gallery, run_cli, tmp_path):
    idx = tmp_path / "e.index"
    code, _, err = run_cli("index", "search", idx, "x.png")
    assert code == 2 and "does not exist" in err
    code, _, _ = run_cli("index", "build", gallery["folder"], "--model", gallery["model_path"], "--out", idx)
    assert code == 0
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    code, out, err = run_cli("index", "search", idx, bad)
    assert code == 2 and "error:" in err and str(bad) in err and out == ""
    query = str(gallery["folder"] / "Bo_Berg" / "Bo_Berg_0002.png")
    code, _, err = run_cli("index", "search", idx, query, "-k", "99")
    assert code == 2 and "larger than the index" in err
    code, _, err = run_cli("index", "search", idx, query, "--model", gallery["other_path"])
    assert code == 2 and "another model" in err
    before = idx.read_bytes()
    code, _, err = run_cli("index", "remove", idx, "12345")
    assert code == 2 and "not in the index" in err and idx.read_bytes() == before
    code, _, err = run_cli("index", "build", gallery["folder"], "--model", gallery["model_path"], "--out", idx, "--metric", "cos")
    assert code == 2 and "unknown metric" in err and idx.read_bytes() == before


# ---- duplicates across two sets, search --detect


def test_find_duplicates_against_codes_gives_every_pair_within_reach():
    from facespace.pipelines.retrieval import DuplicatePair

    rng = np.random.default_rng(1)
    ref = rng.standard_normal((40, 6)).astype(np.float32) * 3
    ref[10:15] = ref[10] + 0.001 * rng.standard_normal((5, 6)).astype(np.float32)  # five near-copies of one face
    new = Index(6, metric="l2")
    new.add(np.vstack([ref[3] + 0.002, ref[10], rng.standard_normal((1, 6)).astype(np.float32) * 3 + 50]),
            ids=[7, 8, 9])
    pairs = find_duplicates(new, max_distance=0.02, against=ref, k=2)  # k=2 < 5 matches: the search widens
    assert all(isinstance(p, DuplicatePair) for p in pairs)
    assert sorted((p.new, p.ref) for p in pairs) == [(7, 3)] + [(8, r) for r in range(10, 15)]
    assert [p.distance for p in pairs] == sorted(p.distance for p in pairs)
    exact = np.linalg.norm(new.reconstruct([7])[0] - ref[3])
    assert abs(next(p.distance for p in pairs if p.new == 7) - exact) < 1e-5
    assert find_duplicates(new, max_distance=0.0, against=ref[20:]) == []


def test_find_duplicates_against_refuses_sets_that_do_not_compare(gallery, index):
    other = Index(6, metric="cosine")
    other.add(np.eye(6, dtype=np.float32))
    with pytest.raises(IndexingError, match="l2.*cosine|cosine.*l2"):
        find_duplicates(index, max_distance=0.1, against=other)
    with pytest.raises(IndexingError, match="size 6.*size 4"):
        find_duplicates(index, max_distance=0.1, against=np.zeros((3, 4), np.float32))
    foreign = build_index(gallery["other_path"], gallery["faces"], metric="l2")
    with pytest.raises(IndexingError, match="different models"):
        find_duplicates(index, max_distance=0.1, against=foreign)
    with pytest.raises(IndexingError, match="max_distance"):
        find_duplicates(index, max_distance=float("nan"), against=foreign)


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory):
    """A reference folder of 20 faces and a new folder: an exact copy, a JPEG re-encode and a
    slightly smaller copy of three reference faces, and 8 faces that are not in the reference."""
    from PIL import Image
    from skimage.data import lfw_subset

    from facespace.models.registry import save_model
    from facespace.data import load_faces
    from facespace.models.pca import PCAAutoencoder

    root = tmp_path_factory.mktemp("two")
    ref, new = root / "ref", root / "new"
    ref.mkdir()
    new.mkdir()
    faces = lfw_subset()[:28]

    def save(face, path):
        Image.fromarray((face * 255).astype(np.uint8)).resize((64, 64), Image.BILINEAR).convert("RGB").save(path)

    for i in range(20):
        save(faces[i], ref / f"ref_{i:02d}.png")
    shutil.copy(ref / "ref_00.png", new / "copy_exact.png")
    Image.open(ref / "ref_01.png").save(new / "copy_jpeg.jpg", quality=80)
    Image.open(ref / "ref_02.png").resize((58, 58), Image.BICUBIC).save(new / "copy_small.png")
    for i in range(20, 28):
        save(faces[i], new / f"other_{i:02d}.png")
    save_model(PCAAutoencoder(code_size=16).fit(load_faces("embedded", size=32).images), root / "pca.safetensors")
    return root


def test_cli_duplicates_across_two_folders_finds_the_copies_only(two_folders, run_cli, tmp_path):
    root = two_folders
    report = tmp_path / "dup.html"
    code, out, err = run_cli("index", "duplicates", root / "new", "--against", root / "ref", "--model", root / "pca.safetensors",
                             "--max-distance", "0.01", "--report", report)
    assert code == 0, err
    table = rows(out)
    assert table[0] == ["new_path", "ref_path", "distance"]
    found = {(r[0].rsplit("/", 1)[1], r[1].rsplit("/", 1)[1]) for r in table[1:]}
    assert found == {("copy_exact.png", "ref_00.png"), ("copy_jpeg.jpg", "ref_01.png"), ("copy_small.png", "ref_02.png")}
    distances = [float(r[2]) for r in table[1:]]
    assert distances == sorted(distances) and distances[0] == 0.0
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 6 and "copy_jpeg.jpg" in html

    # the same with the reference given as an index, and the new set as exported codes
    assert run_cli("index", "build", root / "ref", "--model", root / "pca.safetensors", "--out", tmp_path / "ref.index")[0] == 0
    assert run_cli("encode", root / "new", "--model", root / "pca.safetensors", "--out", tmp_path / "new.csv")[0] == 0
    code, out2, err = run_cli("index", "duplicates", tmp_path / "new.csv", "--against", tmp_path / "ref.index",
                              "--max-distance", "0.01")
    assert code == 0, err
    assert {(r[0], r[1]) for r in rows(out2)[1:]} == {(r[0], r[1]) for r in table[1:]}
    code, out3, err = run_cli("index", "duplicates", tmp_path / "new.csv", "--max-distance", "0.01")  # within the export
    assert code == 0 and rows(out3) == [["group", "id", "path", "name"]], err  # no two new images are copies

    code, _, err = run_cli("index", "duplicates", root / "new", "--against", root / "ref", "--max-distance", "0.01")
    assert code == 2 and "--model" in err
    code, _, err = run_cli("index", "duplicates", root / "new", "--max-distance", "0.01")
    assert code == 2 and "--against" in err


def test_cli_duplicates_within_one_index_writes_a_group_report(two_folders, run_cli, tmp_path):
    root = two_folders
    idx = tmp_path / "all.index"
    assert run_cli("index", "build", root, "--model", root / "pca.safetensors", "--out", idx)[0] == 0
    code, out, err = run_cli("index", "duplicates", idx, "--max-distance", "0.01", "--report", tmp_path / "g.html")
    assert code == 0, err
    groups = rows(out)[1:]
    assert len({g[0] for g in groups}) == 3 and len(groups) == 6
    assert (tmp_path / "g.html").read_text().count("data:image/png;base64,") == 6


def test_cli_search_detect_one_query_per_face(two_folders, run_cli, tmp_path):
    import cv2
    from PIL import Image
    from skimage.data import astronaut

    root = two_folders
    Image.fromarray(cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)).save(tmp_path / "astro.png")
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(tmp_path / "blank.png")
    idx = tmp_path / "ref.index"
    assert run_cli("index", "build", root / "ref", "--model", root / "pca.safetensors", "--out", idx)[0] == 0
    code, out, err = run_cli("index", "search", idx, tmp_path / "astro.png", tmp_path / "blank.png", "--detect", "-k", "3",
                             "--montage", tmp_path / "m.png")
    assert code == 0, err
    table = rows(out)
    assert [r[0] for r in table[1:]] == [f"{tmp_path / 'astro.png'}#0"] * 3 and [r[1] for r in table[1:]] == ["1", "2", "3"]
    assert f"no face found in {tmp_path / 'blank.png'}" in err.replace("\n", "") and (tmp_path / "m.png").exists()
    code, out, err = run_cli("index", "search", idx, tmp_path / "blank.png", "--detect")
    assert code == 2 and "no face found" in err and out == ""
