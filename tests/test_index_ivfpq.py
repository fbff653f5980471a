"""The ivfpq backend beyond the shared index tests: vectors on disk, its parts folder, its budget,
and `index build --codes FOLDER --backend ivfpq --memory`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facespace.errors import FacespaceError
from facespace.index import Index, IndexingError
from facespace.index.sizing import default_probes, format_bytes, parse_memory, plan_ivfpq
from facespace.index.store import parts_folders

DIM = 16
SMALL = {"n_lists": 8, "n_bits": 6, "threads": 1}  # trains from 256 vectors


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, DIM)).astype(np.float32) * 3
    return centres[rng.integers(0, 40, 1500)] + rng.standard_normal((1500, DIM)).astype(np.float32)


def built(data, metric="l2", **settings):
    index = Index(DIM, metric, "ivfpq", **{**SMALL, **settings})
    index.add(data)
    return index


def test_vectors_live_in_files_and_the_index_saves_as_a_file_and_a_parts_folder(data, tmp_path):
    index = built(data)
    assert isinstance(index._data, np.memmap) and isinstance(index._ids, np.memmap)  # not in RAM
    _, ids = index.search(data[:50], k=1)
    assert index._impl.trained and (ids[:, 0] == np.arange(50)).all()
    index.save(tmp_path / "a.index")
    (folder,) = parts_folders(tmp_path / "a.index")
    assert sorted(p.name for p in folder.iterdir()) == ["data.bin", "ids.bin", "lists.bin"]
    again = Index.load(tmp_path / "a.index")
    assert isinstance(again._data, np.memmap) and not again._data.flags.writeable  # mapped, read-only
    assert again._impl._lists_file is not None  # the faiss lists are mapped too
    d1, i1 = index.search(data[:200], k=5)
    d2, i2 = again.search(data[:200], k=5)
    assert (i1 == i2).all() and np.array_equal(d1, d2)


def test_reported_distances_are_exact(data):
    for metric in ("l2", "cosine", "ip"):
        index = built(data, metric, n_probes=8)
        q = data[:30] * 0.9 + 0.05
        d, ids = index.search(q, k=4)
        x = index.reconstruct(ids.ravel()).reshape(30, 4, DIM)
        if metric == "l2":
            want = np.linalg.norm(x - q[:, None], axis=-1)
        elif metric == "cosine":
            want = 1 - np.einsum("nkd,nd->nk", x, q) / np.linalg.norm(x, axis=-1) / np.linalg.norm(q, axis=-1)[:, None]
        else:
            want = -np.einsum("nkd,nd->nk", x, q)
        np.testing.assert_allclose(d, want, rtol=1e-4, atol=1e-4)


def test_every_list_probed_gives_exact_search_answers(data):
    """All lists probed and many candidates re-ranked (more than 4 k: only the k nearest are sorted)."""
    for metric in ("l2", "cosine"):
        index, exact = built(data, metric, n_probes=SMALL["n_lists"], rerank=64), Index(DIM, metric)
        exact.add(data)
        q = data[:40] * 0.8 + 0.1
        (d, ids), (want_d, want_ids) = index.search(q, k=5), exact.search(q, k=5)
        assert (ids == want_ids).mean() > 0.99  # PQ may miss a true neighbour, rarely
        np.testing.assert_allclose(np.sort(d, 1), d)  # nearest first
        np.testing.assert_allclose(d[ids == want_ids], want_d[ids == want_ids], rtol=1e-4, atol=1e-5)


def test_no_precomputed_tables_when_built_or_loaded(data, tmp_path):
    """faiss's l2 tables (n_lists * m * 256 floats) are never built: not when training, not when reading."""
    import faiss

    index = built(data)
    q = data[:20] + 0.01
    before = index.search(q, k=5)
    limit = faiss.cvar.precomputed_table_max_bytes
    index.save(tmp_path / "i.index")
    loaded = Index.load(tmp_path / "i.index")
    after = loaded.search(q, k=5)
    for ivf in (index._impl._ivf, loaded._impl._ivf):
        assert ivf.use_precomputed_table == -1 and ivf.precomputed_table.size() == 0
    assert faiss.cvar.precomputed_table_max_bytes == limit  # the process-wide limit is put back
    np.testing.assert_array_equal(before[1], after[1])


def test_adding_to_a_loaded_index_leaves_the_saved_one_unchanged(data, tmp_path):
    path = tmp_path / "a.index"
    built(data[:1000]).save(path)
    (folder,) = parts_folders(path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    again = Index.load(path)
    new = again.add(data[1000:] + 20.0)
    assert (again.search(data[1000:1010] + 20.0, k=1)[1][:, 0] == new[:10]).all()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert len(Index.load(path)) == 1000
    again.save(path)  # a new parts folder; the old one is gone
    (folder2,) = parts_folders(path)
    assert folder2 != folder and not folder.exists()
    assert len(Index.load(path)) == 1500


def test_an_index_saved_before_training_trains_after_loading(data, tmp_path):
    index = built(data[:100])  # fewer than 256: searched exhaustively, not trained
    assert (index.search(data[:100], k=1)[1][:, 0] == np.arange(100)).all() and not index._impl.trained
    index.save(tmp_path / "u.index")
    again = Index.load(tmp_path / "u.index")
    again.add(data[100:])
    assert (again.search(data[:300], k=1)[1][:, 0] == np.arange(300)).all() and again._impl.trained


def test_removing_after_loading_masks_rows_without_rewriting_the_lists(data, tmp_path):
    built(data).save(tmp_path / "r.index")
    again = Index.load(tmp_path / "r.index")
    gone = np.arange(0, 1500, 2)
    again.remove(gone)
    _, ids = again.search(data[:100], k=10)
    assert not np.isin(ids, gone).any() and (ids >= 0).all()
    assert again._impl._lists_file is not None  # still mapped: nothing was rewritten
    again.save(tmp_path / "r.index")  # its own parts folder is replaced and deleted...
    assert (again.search(data[1:100:2], k=1)[1][:, 0] == np.arange(1, 100, 2)).all()  # ...yet it still reads it
    third = Index.load(tmp_path / "r.index")
    assert len(third) == 750 and not np.isin(third.search(data[:100], k=10)[1], gone).any()


def test_settings_are_saved_and_search_settings_can_change(data, tmp_path):
    index = built(data, n_probes=3, rerank=40, m=4, quantizer="hnsw", seed=5)
    index.configure(n_probes=5)
    index.save(tmp_path / "s.index")
    settings = Index.load(tmp_path / "s.index").settings
    assert settings == {**SMALL, "m": 4, "n_probes": 5, "rerank": 40, "quantizer": "hnsw", "train_size": None,
                        "seed": 5}
    with pytest.raises(FacespaceError, match="no setting"):
        index.configure(n_lists=4)  # a build-time setting


def test_bad_settings_are_refused():
    with pytest.raises(FacespaceError, match="must divide the dimension 16; got 5; choose one of: 1, 2, 4, 8, 16"):
        Index(DIM, backend="ivfpq", m=5)
    with pytest.raises(FacespaceError, match="unknown quantizer"):
        Index(DIM, backend="ivfpq", quantizer="graph")
    with pytest.raises(FacespaceError, match="positive integer"):
        Index(DIM, backend="ivfpq", n_probes=0)


def test_damaged_or_missing_parts_are_refused(data, tmp_path):
    import shutil

    path = tmp_path / "d.index"
    built(data).save(path)
    (folder,) = parts_folders(path)
    part = folder / "data.bin"
    blob = bytearray(part.read_bytes())
    blob[100] ^= 0xFF
    part.write_bytes(bytes(blob))
    with pytest.raises(IndexingError, match="data.bin is corrupt"):
        Index.load(path)
    part.write_bytes(bytes(blob[:-8]))
    with pytest.raises(IndexingError, match="cut short"):
        Index.load(path)
    shutil.rmtree(folder)
    with pytest.raises(IndexingError, match="missing; copy or move the index file together with that folder"):
        Index.load(path)


def test_a_failed_save_leaves_the_old_index_whole(data, tmp_path, monkeypatch):
    from facespace.index import ivfpq

    path = tmp_path / "k.index"
    built(data[:1000]).save(path)
    before = path.read_bytes()
    (folder,) = parts_folders(path)
    index = built(data)

    def crash(self, data, alive):
        return {"lists": lambda target: (_ for _ in ()).throw(OSError("disk full"))}

    monkeypatch.setattr(ivfpq.IVFPQBackend, "parts", crash)
    with pytest.raises(OSError, match="disk full"):
        index.save(path)
    assert path.read_bytes() == before and parts_folders(path) == [folder]
    assert len(Index.load(path)) == 1000


def recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)])


def test_recall_floor_with_planned_settings():
    """Settings from the planner on 20,000 clustered vectors reach recall@10 0.95 against exact."""
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((500, 32)).astype(np.float32) * 2
    x = centres[rng.integers(0, 500, 20000)] + rng.standard_normal((20000, 32)).astype(np.float32)
    q = centres[rng.integers(0, 500, 200)] + rng.standard_normal((200, 32)).astype(np.float32)
    plan = plan_ivfpq(len(x), 32, parse_memory("1GB"))
    assert plan["settings"]["n_lists"] == 128 and plan["settings"]["m"] == 16
    exact, approx = Index(32, "l2"), Index(32, "l2", "ivfpq", threads=1, **plan["settings"])
    exact.add(x)
    approx.add(x)
    assert recall(approx.search(q, k=10)[1], exact.search(q, k=10)[1]) >= 0.95


def test_lists_grow_with_the_vectors_and_probes_more_slowly():
    """At most about 1,000 vectors a list (at least sqrt(n) lists, capped); probes grow as the lists' cube root."""
    lists = {n: plan_ivfpq(n, 32, parse_memory("8GB"))["settings"]["n_lists"]
             for n in (20_000, 1_000_000, 10_000_000, 100_000_000, 10**9 // 4)}
    assert lists == {20_000: 128, 1_000_000: 1024, 10_000_000: 16384, 100_000_000: 16384, 10**9 // 4: 16384}
    probes = [default_probes(n) for n in (16, 128, 1024, 4096, 8192, 16384)]
    assert probes == [16, 16, 16, 25, 32, 40]  # never more than the lists; 1/64 of them at 1,024, 1/410 at 16,384


def test_the_plan_follows_the_budget_and_names_the_smallest_that_works():
    big = plan_ivfpq(10_000_000, 32, parse_memory("2GB"))
    assert big["settings"] == {"n_lists": 16384, "m": 16, "n_bits": 8, "n_probes": 40, "rerank": 200,
                               "quantizer": "hnsw"}
    assert big["memory"] <= 2e9 and big["raw"] == 1_280_000_000
    tight = plan_ivfpq(10_000_000, 32, parse_memory("250MB"))
    assert tight["settings"]["m"] == 8 and tight["memory"] <= 250e6  # fewer bytes per code to fit
    with pytest.raises(FacespaceError, match=r"too small for 10,000,000 vectors .* smallest that works is --memory ") as e:
        plan_ivfpq(10_000_000, 32, parse_memory("100MB"))
    least = parse_memory(str(e.value).rsplit("--memory ", 1)[1])
    assert plan_ivfpq(10_000_000, 32, least)["settings"]["m"] == 4  # the smallest it names does work
    assert parse_memory("1.5GiB") == int(1.5 * 2**30) and parse_memory("512MB") == 512 * 10**6
    assert parse_memory(format_bytes(123_456_789)) >= 123_456_789
    with pytest.raises(FacespaceError, match="write it like 2GB"):
        parse_memory("lots")


# ---- the CLI: `index build --codes FOLDER --backend ivfpq --memory`


def write_folder(folder, parts, models):
    """A shard folder as `facespace encode --out FOLDER/` writes it: shards, sidecars, manifest."""
    from facespace.pipelines.export.formats import crc
    from facespace.pipelines.export.write import save_codes

    folder.mkdir()
    shards = {}
    for k, (z, model) in enumerate(zip(parts, models)):
        name = f"shard-{k:05d}.npy"
        save_codes(z, folder / name, sources=[f"/p/{k}/{i}.jpg" for i in range(len(z))], names=None, model=model)
        shards[f"{k:05d}"] = {"file": name, "rows": len(z), "crc": crc(z), "files": len(z)}
    manifest = {"format": "facespace-codes-shards", "version": 1, "job": "x", "model": models[0], "settings": {},
                "files": sum(map(len, parts)), "shards": shards, "failed": {}, "n_shards": len(parts)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


MODEL_A = {"hash": "a" * 16, "weights_hash": "wa", "kind": "pca", "path": None, "image_shape": [8, 8, 1], "code_size": DIM}
MODEL_B = {**MODEL_A, "hash": "b" * 16, "weights_hash": "wb"}


def test_cli_builds_an_ivfpq_index_from_a_shard_folder_and_says_what_it_picked(data, tmp_path, run_cli):
    folder = write_folder(tmp_path / "codes", [data[:600], data[600:1100], data[1100:]], [MODEL_A] * 3)
    out = tmp_path / "c.index"
    code, stdout, stderr = run_cli("index", "build", "--codes", folder, "--backend", "ivfpq", "--memory", "1GB", "--out", out)
    assert code == 0, stderr
    assert "ivfpq for 1,500 codes within 1GB: 32 lists (flat quantizer), 8 sub-quantisers" in stderr
    info = json.loads(stdout.strip().splitlines()[-1])
    assert info["count"] == 1500 and info["settings"]["n_lists"] == 32 and info["format_version"] == 2
    index = Index.load(out)
    assert index.model["weights_hash"] == "wa"
    assert index.get_metadata([1234])[0]["path"] == "/p/2/134.jpg"
    assert (index.search(data[::50], k=1)[1][:, 0] == np.arange(0, 1500, 50)).all()


def test_cli_refuses_a_small_budget_two_models_and_writes_nothing(data, tmp_path, run_cli):
    folder = write_folder(tmp_path / "codes", [data[:600], data[600:]], [MODEL_A, MODEL_A])
    out = tmp_path / "c.index"
    code, _, err = run_cli("index", "build", "--codes", folder, "--backend", "ivfpq", "--memory", "1MB", "--out", out)
    assert code != 0 and "the smallest that works is --memory 67.2MB" in err
    mixed = write_folder(tmp_path / "mixed", [data[:600], data[600:]], [MODEL_A, MODEL_B])
    code, _, err = run_cli("index", "build", "--codes", mixed, "--backend", "ivfpq", "--out", out)
    assert code != 0 and "made by another model" in err
    code, _, err = run_cli("index", "build", "--codes", folder, "--backend", "hnsw", "--memory", "1GB", "--out", out)
    assert code != 0 and "use --backend ivfpq" in err
    assert not out.exists() and parts_folders(out) == []


def test_take_rows_reads_mapped_rows_as_indexing_would(tmp_path):
    from facespace.index.mapped import ScratchArrays, take_rows

    scratch = ScratchArrays()
    x = scratch.grow("data", np.zeros((0, 3), np.float32), 0, (1000, 3))
    x[:] = np.arange(3000, dtype=np.float32).reshape(1000, 3)
    rows = np.array([[5, 999, 5], [0, 17, 400]])
    assert np.array_equal(take_rows(x, rows), x[rows]) and take_rows(x, rows).shape == (2, 3, 3)
    assert np.array_equal(take_rows(np.asarray(x), rows), x[rows])  # in RAM: plain indexing
