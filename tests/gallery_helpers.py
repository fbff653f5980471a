"""Galleries of given codes for the gallery index and calibration tests: an encoder whose "images"
are codes, people as noisy centres, and today's full-scan answers to compare the index's with."""

from __future__ import annotations

import numpy as np

from facespace.people.gallery.gallery import Gallery
from facespace.people.gallery.matching import match_codes


class CodeEncoder:
    """An encoder whose "images" are codes shaped `(1, 1, d)`: a gallery of given codes."""

    kind = "codes_test"

    def __init__(self, dim: int = 16):
        self.config = {"dim": dim}
        self.checkpoint_info: dict = {}

    @property
    def image_shape(self):
        return (1, 1, self.config["dim"])

    @property
    def code_size(self):
        return self.config["dim"]

    def encode(self, images, *, batch_size=256):
        return np.asarray(images, np.float32).reshape(len(images), -1).copy()


def people_codes(rng: np.random.Generator, n: int, per: int, dim: int = 16, spread: float = 0.5) -> np.ndarray:
    """`(n, per, 1, 1, dim)` codes: each person a random centre plus noise."""
    c = rng.normal(size=(n, 1, dim))
    f = c + spread * rng.normal(size=(n, per, dim))
    return (f / np.linalg.norm(f, axis=2, keepdims=True)).astype(np.float32)[:, :, None, None, :]


def full_scan(g: Gallery, probes: np.ndarray, k: int = 5, max_distance: float | None = None):
    """Today's answers: every enrolled code scored by `match_codes`."""
    codes, person, names = g.codes()
    rej, rej_person = g.rejections()
    threshold = max_distance if max_distance is not None else g.threshold
    stored = dict(g.db.execute("SELECT key, value FROM meta")).get("reject_radius")
    radius = max(float(stored) if stored else 0.1 * threshold, 1e-6)
    per_person = dict(g.db.execute("SELECT name, max_distance FROM people WHERE max_distance IS NOT NULL"))
    return match_codes(probes, codes, person, names, threshold=threshold, metric=g.metric, k=k, per_person=per_person,
                       rejected=rej, rejected_person=rej_person, radius=radius, override=max_distance is not None,
                       scoring=g.scoring, cohort=g.cohort())


def assert_same(found, expected):
    assert [r.name for r in found] == [r.name for r in expected]
    for a, b in zip(found, expected):
        assert [c for c, _ in a.candidates] == [c for c, _ in b.candidates]
        np.testing.assert_allclose([d for _, d in a.candidates], [d for _, d in b.candidates], rtol=0, atol=1e-9)


def probes_for(g: Gallery, rng: np.random.Generator, n: int = 40) -> np.ndarray:
    """Half near-copies of enrolled faces, half random codes (strangers)."""
    codes = g.codes()[0]
    known = codes[rng.choice(len(codes), n // 2)] + 0.05 * rng.normal(size=(n // 2, codes.shape[1]))
    return np.concatenate([known, rng.normal(size=(n - n // 2, codes.shape[1]))]).astype(np.float32)


def enrol(g: Gallery, codes: np.ndarray, first: int = 0, **options) -> None:
    g.enroll_many({f"p{first + i}": c for i, c in enumerate(codes)}, force=True, **options)


def change(g: Gallery, faces: np.ndarray, step: int, *, split: int, first: int, own_threshold: float) -> None:
    """Step `step` of the edits the index tests drive a gallery through (it starts as `faces[:split]`):
    1 enrols `faces[split:]` as people numbered from `first`; 2 removes p3 and p17; 3 rejects a face
    of p5 for p5 and one of p6 for p7 ("not this person"); 4 replaces p8's images and gives p9 its own
    threshold `own_threshold`. Other steps change nothing."""
    if step == 1:
        enrol(g, faces[split:], first=first)
    if step == 2:
        g.remove("p3")
        g.remove("p17")
    if step == 3:  # "not this person" for probes near p5's and p6's faces
        codes, person, names = g.codes()
        g.reject(codes[person == names.index("p5")][0], "p5")
        g.reject(codes[person == names.index("p6")][1], "p7")
    if step == 4:
        g.enroll("p8", 0.8 * faces[8][:2] + 0.2 * faces[30][:2], replace=True, force=True)
        g.set_max_distance("p9", own_threshold)


def saved_gallery(tmp_path, seed: int):
    """A 20-person file gallery (codes of 30 people kept in tmp_path/faces.npy), identified once so its
    index is on disk; `(gallery, faces, probes)`."""
    rng = np.random.default_rng(seed)
    faces = people_codes(rng, 30, 3)
    np.save(tmp_path / "faces.npy", faces)
    g = Gallery(tmp_path / "g.db", CodeEncoder())
    enrol(g, faces[:20])
    probes = probes_for(g, rng)
    g.identify_codes(probes)
    return g, faces, probes
