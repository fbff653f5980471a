"""The index: every backend passes the same tests; the approximate ones also a recall floor."""

from __future__ import annotations

import numpy as np
import pytest

from facespace.errors import FacespaceError
from facespace.index import Index, IndexingError

BACKENDS = ["exact", "lsh", "hnsw", "ivfpq"]
DIM = 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((600, DIM)).astype(np.float32)


def make(backend, metric="cosine", **settings):
    if backend == "hnsw":
        settings.setdefault("threads", 1)
    if backend == "ivfpq":  # small enough to train on the 600 test vectors (it trains from 256)
        settings = {"n_lists": 8, "n_bits": 6, "threads": 1, **settings}
    return Index(DIM, metric=metric, backend=backend, **settings)


def brute(x, q, metric):
    """Reference distances (n_q, n_x) in the documented units."""
    if metric == "l2":
        return np.sqrt(((q[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1))
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        return 1 - qn.astype(np.float64) @ xn.T
    return -(q.astype(np.float64) @ x.T)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_every_item_is_its_own_nearest_neighbour_before_and_after_reload(backend, metric, data, tmp_path):
    index = make(backend, metric)
    index.add(data[:400])
    index.add(data[400:])  # adding after build
    _, ids = index.search(data, k=3)
    assert (ids[:, 0] == np.arange(len(data))).all()
    index.save(tmp_path / "a.index")
    again = Index.load(tmp_path / "a.index")
    assert (again.backend, again.metric, again.settings) == (backend, metric, index.settings)
    d2, ids2 = again.search(data, k=3)
    assert (ids2[:, 0] == np.arange(len(data))).all()
    np.testing.assert_allclose(d2[:, 0], 0, atol=1e-5)
    # and it keeps working after the reload: add, then find the new items
    new = again.add(data[:5] + 10.0)
    assert (again.search(data[:5] + 10.0, k=1)[1][:, 0] == new).all()


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_exact_distances_are_the_documented_ones(metric, data):
    index = make("exact", metric, chunk_size=97, query_batch=7)  # many chunks and batches
    index.add(data)
    q = data[:20] * 0.5 + 0.1
    d, ids = index.search(q, k=5)
    ref = brute(data, q, metric)
    want = np.argsort(ref, axis=1)[:, :5]
    assert (ids == want).all()
    np.testing.assert_allclose(d, np.take_along_axis(ref, want, 1), rtol=1e-4, atol=1e-4)
    assert (np.diff(d, axis=1) >= 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_removed_ids_are_never_returned(backend, data, tmp_path):
    index = make(backend, "l2")
    index.add(data)
    gone = np.arange(0, 600, 3)
    assert index.remove(gone) == len(gone)
    assert len(index) == 400
    for idx in (index, Index.load(index.save(tmp_path / "r.index") or tmp_path / "r.index")):
        _, ids = idx.search(data, k=10)
        assert not np.isin(ids, gone).any()
        assert not np.isin(gone, idx.ids).any()
        kept = np.setdiff1d(np.arange(600), gone)
        assert (idx.search(data[kept], k=1)[1][:, 0] == kept).all()
    with pytest.raises(IndexingError, match="not in the index"):
        index.remove([0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_k_larger_than_the_index_pads(backend, data):
    index = make(backend)
    index.add(data[:7])
    d, ids = index.search(data[:3], k=12)
    assert d.shape == ids.shape == (3, 12) and d.dtype == np.float32 and ids.dtype == np.int64
    assert (ids[:, 7:] == -1).all() and np.isinf(d[:, 7:]).all()
    for row, dist in zip(ids, d):
        real = row[row >= 0]
        assert len(set(real)) == len(real) and set(real) <= set(range(7))
        assert np.isfinite(dist[row >= 0]).all()
    if backend != "lsh":  # LSH may find fewer candidates than exist; the others find all
        assert (ids[:, :7] >= 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_index_searches_to_padding_and_round_trips(backend, data, tmp_path):
    index = make(backend)
    d, ids = index.search(data[:2], k=4)
    assert (ids == -1).all() and np.isinf(d).all() and len(index) == 0
    index.save(tmp_path / "e.index")
    again = Index.load(tmp_path / "e.index")
    assert len(again) == 0
    again.add(data[:3])
    assert (again.search(data[:3], k=1)[1][:, 0] == [0, 1, 2]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_vectors_are_refused(backend, data):
    index = make(backend)
    with pytest.raises(IndexingError, match="dimension 15 but the index has dimension 16"):
        index.add(data[:, :15])
    index.add(data[:10])
    with pytest.raises(IndexingError, match="dimension"):
        index.search(data[:2, :8], k=1)
    bad = data[:4].copy()
    bad[2, 3] = np.nan
    with pytest.raises(IndexingError, match="NaN"):
        index.add(bad)
    with pytest.raises(IndexingError, match="NaN"):
        index.search(bad, k=1)
    with pytest.raises(IndexingError, match="k must be a positive integer"):
        index.search(data[:1], k=0)
    assert len(index) == 10  # nothing half-added


def test_bad_construction_is_refused():
    with pytest.raises(IndexingError, match="unknown metric 'cos'; expected one of: cosine, l2, ip"):
        Index(4, metric="cos")
    with pytest.raises(IndexingError, match="unknown backend"):
        Index(4, backend="annoy")
    with pytest.raises(FacespaceError, match="no setting"):
        Index(4, backend="hnsw", ef=3)
    with pytest.raises(FacespaceError, match="positive integer"):
        Index(4, backend="exact", chunk_size=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_foreign_and_corrupt_files_are_refused(backend, data, tmp_path):
    index = make(backend)
    index.add(data[:50])
    path = tmp_path / "x.index"
    index.save(path)
    blob = path.read_bytes()
    (tmp_path / "cut.index").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(IndexingError, match="not a readable facespace index"):
        Index.load(tmp_path / "cut.index")
    (tmp_path / "foreign.index").write_bytes(b"PK\x03\x04 this is a zip, not an index" * 10)
    with pytest.raises(IndexingError, match="not a readable facespace index"):
        Index.load(tmp_path / "foreign.index")
    flipped = bytearray(blob)
    flipped[-20] ^= 0xFF  # a damaged byte in the last tensor
    (tmp_path / "flip.index").write_bytes(bytes(flipped))
    with pytest.raises(IndexingError, match="corrupt"):
        Index.load(tmp_path / "flip.index")
    with pytest.raises(IndexingError, match="does not exist"):
        Index.load(tmp_path / "missing.index")


def test_a_model_checkpoint_is_not_an_index(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "m.safetensors"), metadata={"facespace": "{}"})
    with pytest.raises(IndexingError, match="not a facespace index"):
        Index.load(tmp_path / "m.safetensors")


def test_a_failed_save_leaves_the_old_file_whole(data, tmp_path):
    index = make("exact")
    index.add(data[:5], metadata=[{"path": f"{i}.jpg"} for i in range(5)])
    path = tmp_path / "keep.index"
    index.save(path)
    before = path.read_bytes()
    index.add(data[5:6], metadata=[{"path": object()}])  # not JSON-serialisable
    with pytest.raises(IndexingError, match="JSON"):
        index.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.index"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ids_metadata_and_reconstruct_round_trip(backend, data, tmp_path):
    index = make(backend, "cosine")
    ids = index.add(data[:4], ids=[10, 20, 30, 40], metadata=[{"path": f"p{i}", "name": "x", "n": i} for i in range(4)])
    assert ids.tolist() == [10, 20, 30, 40]
    assert index.add(data[4:6]).tolist() == [41, 42]  # counting on from the largest id
    with pytest.raises(IndexingError, match="already in the index"):
        index.add(data[:1], ids=[20])
    with pytest.raises(IndexingError, match="distinct"):
        index.add(data[:2], ids=[7, 7])
    index.save(tmp_path / "m.index")
    again = Index.load(tmp_path / "m.index")
    assert again.get_metadata([30, -1, 41]) == [{"path": "p2", "name": "x", "n": 2}, {}, {}]
    np.testing.assert_allclose(again.reconstruct([10, 42]), data[[0, 5]], rtol=1e-6, atol=1e-6)
    d, found = again.search(data[2:3], k=2)
    assert found[0, 0] == 30


def test_search_settings_can_change_and_are_saved(data, tmp_path):
    index = make("hnsw", ef_search=20, M=8)
    index.add(data)
    index.configure(ef_search=77)
    index.save(tmp_path / "s.index")
    assert Index.load(tmp_path / "s.index").settings["ef_search"] == 77
    with pytest.raises(FacespaceError, match="no setting"):
        index.configure(M=4)  # a build-time setting


def recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)])


@pytest.fixture(scope="module")
def clustered():
    """3,000 vectors around 300 centres: the structure real codes have."""
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((300, DIM)).astype(np.float32) * 3
    x = centres[rng.integers(0, 300, 3000)] + rng.standard_normal((3000, DIM)).astype(np.float32)
    q = centres[rng.integers(0, 300, 200)] + rng.standard_normal((200, DIM)).astype(np.float32)
    return x, q


@pytest.mark.parametrize(
    ("backend", "metric", "settings", "floor"),
    [
        ("hnsw", "l2", {"ef_search": 64}, 0.95),
        ("hnsw", "cosine", {"ef_search": 64}, 0.95),
        ("lsh", "cosine", {"n_tables": 16, "n_bits": 10, "n_probes": 8}, 0.8),
        ("lsh", "l2", {"n_tables": 16, "n_probes": 8}, 0.8),
        ("ivfpq", "l2", {"n_lists": 32, "n_bits": 8, "n_probes": 8, "rerank": 50}, 0.95),
        ("ivfpq", "cosine", {"n_lists": 32, "n_bits": 8, "n_probes": 8, "rerank": 50}, 0.95),
    ],
)
def test_approximate_backends_reach_a_recall_floor(backend, metric, settings, floor, clustered):
    x, q = clustered
    exact = make("exact", metric)
    exact.add(x)
    _, truth = exact.search(q, k=10)
    approx = make(backend, metric, **settings)
    approx.add(x)
    _, found = approx.search(q, k=10)
    assert recall(found, truth) >= floor


@pytest.mark.parametrize(
    ("metric", "settings"),
    [
        # one hyperplane, probed on both sides: every row is a candidate
        ("cosine", {"n_tables": 3, "n_bits": 1, "n_probes": 1, "query_batch": 7}),
        # cells far wider than the data: every row in the query's bucket, found by all 4 tables
        ("l2", {"n_tables": 4, "n_bits": 3, "n_probes": 0, "bucket_width": 1e6, "query_batch": 7}),
    ],
)
def test_lsh_whose_buckets_hold_everything_is_exact(metric, settings, data):
    """When every row is a candidate (many times over) LSH must rank exactly: no duplicates, no misses."""
    exact, lsh = make("exact", metric), make("lsh", metric, **settings)
    for index in (exact, lsh):
        index.add(data)
        index.remove(np.arange(0, 600, 5))
    q = data[:50] * 0.7 + 0.2
    d_exact, ids_exact = exact.search(q, k=8)
    d_lsh, ids_lsh = lsh.search(q, k=8)
    assert (ids_lsh == ids_exact).all()
    np.testing.assert_allclose(d_lsh, d_exact, rtol=1e-5, atol=1e-5)
    d_all, ids_all = lsh.search(q[:3], k=600)  # more than the 480 live rows: padded, each row once
    assert ((ids_all >= 0).sum(1) == 480).all() and np.isinf(d_all[:, 480:]).all()
    assert all(len(set(row[row >= 0])) == 480 for row in ids_all)


def test_a_header_changed_after_saving_is_refused(tmp_path):
    """The metric and the count are under the checksum too: editing them is caught, not searched."""
    import json

    from safetensors.numpy import load_file, save_file

    from facespace.index.store import read_header

    index = Index(4, metric="cosine")
    index.add(np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
    path = tmp_path / "i.index"
    index.save(path)
    header, tensors = read_header(path)
    for field, value in (("metric", "l2"), ("count", 9)):
        forged = {**header, field: value}
        save_file(load_file(str(path)), str(tmp_path / "forged.index"), metadata={"facespace": json.dumps(forged)})
        with pytest.raises(IndexingError, match="header's metric, count or settings"):
            Index.load(tmp_path / "forged.index")
