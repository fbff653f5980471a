"""Real-like code sets for the search benchmarks: PCA(32) codes of windows of LFW photos.

Each LFW photo is loaded at 38x38 from a 108-pixel box (the usual 90-pixel crop plus 9 pixels each
side); a view is a 32x32 window at one of 7x7 offsets, mirrored or not, with its brightness changed.
The query photos (seed 0) are left out of the set; PCA is fitted on the centred, unmirrored windows
of the set's photos. Such a set has the near-duplicate structure of a real photo library (many views
per photo), which makes it easier for graphs than random vectors; say so when quoting it.

`lfw_augmented_codes` makes a set in memory (search_speed.py); `make_codes` streams one of any size
to a .npy file, projecting every window once and mixing views linearly (search_scale.py).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LFW = Path(os.environ.get("FACESPACE_SHARED", ROOT.parent / "shared" / "data")) / "lfw" / "lfw-deepfunneled"
CHUNK = 500_000  # codes generated at a time


def window_pca(n_queries: int):
    """`(imgs (N, 38, 38, 3), query rows, set rows, mean (3072,), components (3072, 32), rng)`: the
    LFW photos, the held-out query photos (seed 0) and the PCA of the set's centred windows; `rng`
    continues the seed-0 stream that chose the queries."""
    from sklearn.decomposition import PCA

    from facespace.data import load_faces

    faces = load_faces(LFW, size=38, crop=(71, 71, 179, 179), progress=False)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(faces))
    qi, gi = order[:n_queries], order[n_queries:]
    imgs = faces.images  # (N, 38, 38, 3)
    centre = np.ascontiguousarray(imgs[gi, 3:35, 3:35]).reshape(len(gi), -1)
    pca = PCA(32, svd_solver="randomized", random_state=0).fit(centre)
    mean, comps = pca.mean_.astype(np.float32), pca.components_.T.astype(np.float32)  # (3072,), (3072, 32)
    return imgs, qi, gi, mean, comps, rng


def lfw_augmented_codes(n: int, n_queries: int, log) -> tuple[np.ndarray, np.ndarray, str]:
    """A real-like set of `n` codes: PCA(32) codes of augmented LFW photos, and held-out queries.

    Each LFW photo is loaded at 38x38 from a 108-pixel box (the usual 90-pixel crop plus 9 pixels
    each side); an augmentation is a 32x32 window at one of 7x7 offsets, mirrored or not, times a
    brightness factor in [0.8, 1.2]. The `n_queries` query photos (chosen with seed 0) are left out
    of the set entirely; each query is one random augmentation of its photo. PCA is fitted on the
    centred, unmirrored windows of the set's photos. So the set is 12,233 photos x ~82 views: it has
    the near-duplicate structure of a real photo library (many views per photo), which makes it
    easier for graphs than random vectors; say so when quoting it.
    """
    imgs, qi, gi, mean, comps, rng = window_pca(n_queries)

    def views(photos: np.ndarray, per: int) -> np.ndarray:
        """Codes `(len(photos) * per, 32)` of `per` distinct random augmentations of each photo."""
        combos = np.stack([rng.permutation(98)[:per] for _ in photos])  # (p, per) of 7*7*2
        p = np.repeat(photos, per)
        dy, dx, flip = (combos.ravel() // 14), (combos.ravel() // 2) % 7, combos.ravel() % 2
        win = np.lib.stride_tricks.sliding_window_view(imgs[photos], (32, 32), axis=(1, 2))  # (p, 7, 7, 3, 32, 32)
        w = win[np.repeat(np.arange(len(photos)), per), dy, dx]  # (m, 3, 32, 32)
        w = np.where(flip[:, None, None, None] == 1, w[..., ::-1], w).transpose(0, 2, 3, 1)  # (m, 32, 32, 3)
        w = np.clip(w * rng.uniform(0.8, 1.2, len(w)).astype(np.float32)[:, None, None, None], 0, 1)
        assert len(p) == len(w)
        return (w.reshape(len(w), -1) - mean) @ comps

    per = -(-n // len(gi))
    chunks = [views(gi[s : s + 200], per) for s in range(0, len(gi), 200)]
    codes = np.concatenate(chunks)[rng.permutation(len(gi) * per)[:n]]
    queries = views(qi, 1)
    how = (f"real-like: PCA(32) codes of {len(gi):,} LFW photos x up to {per} augmentations each (32x32 window at 7x7 "
           f"offsets of a 38x38 load of the 108-px box, mirror, brightness 0.8-1.2), {n:,} kept; queries: "
           f"one augmentation of each of {n_queries} held-out photos")  # fmt: skip
    log(how)
    return np.ascontiguousarray(codes, np.float32), np.ascontiguousarray(queries, np.float32), how


def window_codes(imgs: np.ndarray, mean: np.ndarray, comps: np.ndarray) -> np.ndarray:
    """`(p, 98, 3, 32)` float32: each 32x32 window (7x7 offsets, mirrored or not) projected per channel."""
    per_channel = [comps[c::3] for c in range(3)]  # (1024, 32) each: pixels are flattened y, x, channel
    out = np.zeros((len(imgs), 98, 3, comps.shape[1]), np.float32)
    for flip in (0, 1):
        src = imgs[:, :, ::-1] if flip else imgs
        win = np.lib.stride_tricks.sliding_window_view(src, (32, 32), axis=(1, 2))  # (p, 7, 7, 3, 32, 32)
        for c in range(3):
            w = np.ascontiguousarray(win[:, :, :, c]).reshape(len(imgs), 49, 1024)
            out[:, flip * 49 : (flip + 1) * 49, c] = w @ per_channel[c]
    return out


def make_codes(n: int, n_queries: int, folder: Path, log) -> tuple[Path, Path, str]:
    """The codes file `(n, 32)` and queries `(n_queries, 32)` (.npy), made once and kept in `folder`."""
    codes_path, query_path = folder / f"lfw_views_{n}.npy", folder / f"lfw_views_queries_{n_queries}.npy"
    how_path = folder / f"lfw_views_{n}.json"
    if how_path.is_file() and codes_path.is_file() and query_path.is_file():
        return codes_path, query_path, json.loads(how_path.read_text())["how"]
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    imgs, qi, gi, mean, comps, rng = window_pca(n_queries)
    offset = mean @ comps  # (32,)
    P = np.concatenate([window_codes(imgs[gi[s : s + 500]], mean, comps) for s in range(0, len(gi), 500)])
    Q = window_codes(imgs[qi], mean, comps)

    def views(table: np.ndarray, photos: np.ndarray, windows: np.ndarray) -> np.ndarray:
        gain = rng.uniform(0.8, 1.2, (len(photos), 1)) * rng.uniform(0.9, 1.1, (len(photos), 3))  # (m, 3)
        return np.einsum("mc,mcd->md", gain.astype(np.float32), table[photos, windows]) - offset

    queries = views(Q, np.arange(len(qi)), rng.integers(0, 98, len(qi))).astype(np.float32)
    np.save(query_path, queries)
    out = np.lib.format.open_memmap(codes_path, mode="w+", dtype=np.float32, shape=(n, 32))
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        out[start : start + m] = views(P, rng.integers(0, len(gi), m), rng.integers(0, 98, m))
    out.flush()
    del out
    how = (f"real-like: PCA(32) codes of views of {len(gi):,} LFW photos (a random photo, one of its 98 windows, "
           f"brightness 0.8-1.2 x gain per channel 0.9-1.1; linear, not clipped), {n:,} views; queries: one view of "
           f"each of {n_queries:,} held-out photos")  # fmt: skip
    how_path.write_text(json.dumps({"how": how, "seconds": round(time.perf_counter() - t0, 1)}))
    log(f"made {n:,} codes in {time.perf_counter() - t0:.0f} s: {codes_path}")
    return codes_path, query_path, how
