"""`facespace.people.calibration`: labelled pairs in, curves and thresholds out, stored where they are used.

"Line world": 16x16 grey images `base + t * u` with `||u|| = 1`, so under the raw-pixel encoder
and the l2 metric the distance between two images is `|t1 - t2|` (up to 8-bit rounding) and every
threshold has a known answer.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from facespace.people import calibration as cal
from facespace.errors import DataError, FacespaceError
from facespace.people.gallery.gallery import Gallery
from facespace.models.pixels import PixelEncoder

SIDE = 16
TOL = 0.02  # 8-bit rounding moves a distance by at most ~0.008


def _line_image(t: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    base = rng.uniform(0.35, 0.65, (SIDE, SIDE, 1))
    u = np.where(rng.random((SIDE, SIDE, 1)) < 0.5, -1.0, 1.0) / SIDE  # unit norm over 256 pixels
    return (base + t * u).astype(np.float32)


def _write(path, t: float) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((_line_image(t)[..., 0] * 255).round().astype(np.uint8)).save(path, quality=100)
    return str(path)


# where each calibration image of each person lies on the line
PROBES = {"Ann": [0.10, 0.15], "Bob": [1.32, 1.40], "Cat": [0.30, 0.45]}
ENROLLED = {"Ann": [0.0, 0.02], "Bob": [1.0, 1.02]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("line")
    for name, ts in PROBES.items():
        for k, t in enumerate(ts):
            _write(root / "people" / name / f"{name}_{k + 1:04d}.png", t)
    return root


@pytest.fixture
def encoder():
    return PixelEncoder(size=SIDE, channels=1)


# --- thresholds and curves ---


def test_known_separating_threshold():
    d = np.array([0.05, 0.2, 0.3, 0.5, 0.9, 0.7])
    same = np.array([True, True, True, False, False, False])
    best = cal.summarize(d, same, target_far=None)
    assert best.threshold == pytest.approx(0.4) and best.accuracy == 1.0 and best.far == 0.0 and best.frr == 0.0
    strict = cal.summarize(d, same, target_far=0.0)
    assert 0.3 <= strict.threshold < 0.5 and strict.far == 0.0
    assert strict.summary() == {"threshold": strict.threshold, "metric": "cosine", "target_far": 0.0, "far": 0.0,
                                "frr": 0.0, "accuracy": 1.0, "eer": 0.0, "n_pairs": 6, "n_same": 3, "n_different": 3}
    loose = cal.summarize([0.1, 0.6, 0.2, 0.3], [True, True, False, False], target_far=0.5)
    assert loose.far == 0.5 and loose.frr == 0.5  # one impostor (0.2) may pass; 0.6 then fails
    # curves cross at the threshold 0.2 (FAR 1/2, FRR 1/2)
    assert loose.eer == 0.5


def test_error_curves_are_monotone_and_exact(rng):
    s = rng.random(200)
    g = rng.random(200) < 0.5
    t, far, frr = cal.error_curves(s, g)
    assert np.all(np.diff(t) > 0) and np.all(np.diff(far) >= 0) and np.all(np.diff(frr) <= 0)
    k = 57
    assert far[k] == pytest.approx(np.mean(s[~g] <= t[k])) and frr[k] == pytest.approx(np.mean(s[g] > t[k]))
    assert far[-1] == 1.0 and frr[-1] == 0.0


def test_summarize_refuses_one_sided_pairs():
    with pytest.raises(FacespaceError, match="both same-person and different-person"):
        cal.summarize([0.1, 0.2], [True, True])
    with pytest.raises(FacespaceError, match="no scores"):
        cal.summarize([], [])


def test_plot_curves_writes_a_png(tmp_path):
    c = cal.summarize([0.1, 0.2, 0.6, 0.7], [True, True, False, False])
    path = cal.plot_curves(c, tmp_path / "curves.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (600, 400)


# --- pairs in ---


def test_csv_pairs_with_and_without_header(tmp_path):
    (tmp_path / "a.png").touch()
    (tmp_path / "pairs.csv").write_text("a.png,b.png,1\nsub/c.png,a.png,no\n")
    p = cal.read_pair_file(tmp_path / "pairs.csv")
    assert p.paths_a == [str(tmp_path / "a.png"), str(tmp_path / "sub/c.png")]
    assert p.same.tolist() == [True, False] and p.names_a == [None, None]
    (tmp_path / "named.csv").write_text("same,path_b,path_a,name_b,name_a\ntrue,b.png,a.png,Bo,Al\n")
    q = cal.read_pair_file(tmp_path / "named.csv")
    assert q.paths_a == [str(tmp_path / "a.png")] and q.names_a == ["Al"] and q.names_b == ["Bo"] and q.same.all()


@pytest.mark.parametrize("text, match", [
    ("", "empty pairs file"),
    ("\n \n", "empty pairs file"),
    ("path_a,path_b,same\n", "no pairs"),
    ("a.png,b.png,maybe\n", r"pairs.csv:1: 'same' must be"),
    ("a.png,b.png,1\na.png\n", r"pairs.csv:2: expected path_a,path_b,same"),
    ("path_a,same\na.png,1\n", "header lacks path_b"),
    (",b.png,1\n", "empty image path"),
    ("3\nAnn\t1\t2\n", "promises 6 pairs"),
])
def test_bad_pairs_files(tmp_path, text, match):
    (tmp_path / "pairs.csv").write_text(text)
    with pytest.raises(DataError, match=match):
        cal.read_pair_file(tmp_path / "pairs.csv", lfw=tmp_path)


def test_missing_pairs_file(tmp_path):
    with pytest.raises(DataError, match="no such pairs file"):
        cal.read_pair_file(tmp_path / "nope.txt")


def test_lfw_pairs_file(world, encoder):
    lfw = world / "lfw"
    pairs = lfw / "pairs.txt"
    lfw.mkdir()
    pairs.write_text("2\nAnn\t1\t2\nBob\t1\t2\nAnn\t1\tBob\t2\nCat\t2\tBob\t1\n")
    for name in PROBES:  # LFW files are <Name>/<Name>_NNNN.jpg
        for k, t in enumerate(PROBES[name]):
            _write(lfw / name / f"{name}_{k + 1:04d}.jpg", t)  # JPEG at quality 100: near-lossless
    p = cal.read_pair_file(pairs, lfw=lfw)
    assert p.same.tolist() == [True, True, False, False] and p.names_b == ["Ann", "Bob", "Bob", "Bob"]
    c, no_face = cal.calibrate_pairs(encoder, p, target_far=None, metric="l2")
    # distances 0.05, 0.08 (same) and 1.30, 0.87 (different): best-accuracy cut midway 0.08 .. 0.87
    assert c.threshold == pytest.approx(0.475, abs=TOL) and c.accuracy == 1.0 and no_face == []


def test_folder_pairs_all_same_and_a_balanced_seeded_sample(tmp_path):
    for name, n in (("A", 4), ("B", 3), ("C", 1)):
        for k in range(n):
            _write(tmp_path / name / f"{k}.png", 0.1 * k)
    p = cal.folder_pairs(tmp_path, seed=3)
    same = [(a, b) for a, b, s in zip(p.paths_a, p.paths_b, p.same) if s]
    assert len(same) == 6 + 3 and len(p) == 18  # C(4,2) + C(3,2) same, as many different
    assert all(na == nb for na, nb, s in zip(p.names_a, p.names_b, p.same) if s)
    assert all(na != nb for na, nb, s in zip(p.names_a, p.names_b, p.same) if not s)
    diff = {frozenset(ab) for ab, s in zip(zip(p.paths_a, p.paths_b), p.same) if not s}
    assert len(diff) == 9  # no pair drawn twice
    again = cal.folder_pairs(tmp_path, seed=3)
    assert again.paths_a == p.paths_a and again.paths_b == p.paths_b
    assert len(cal.folder_pairs(tmp_path, max_same=4)) == 8


def test_folder_pairs_bad_input(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        cal.folder_pairs(tmp_path / "nope")
    _write(tmp_path / "one" / "Ann" / "1.png", 0.0)
    _write(tmp_path / "one" / "Ann" / "2.png", 0.1)
    with pytest.raises(DataError, match="at least two people"):
        cal.folder_pairs(tmp_path / "one")
    for name in ("Ann", "Bob"):
        _write(tmp_path / "single" / name / "1.png", 0.0)
    with pytest.raises(DataError, match="nobody .* has two images"):
        cal.folder_pairs(tmp_path / "single")


def test_missing_images_are_named(tmp_path, encoder):
    (tmp_path / "pairs.csv").write_text("a.png,b.png,1\n")
    with pytest.raises(DataError, match="do not exist, e.g. .*a.png"):
        cal.calibrate_pairs(encoder, cal.read_pair_file(tmp_path / "pairs.csv"))


# --- a gallery's thresholds, as identify decides ---


def _gallery(path, encoder):
    g = Gallery(path, encoder, metric="l2")
    g.enroll_many({name: np.stack([_line_image(t) for t in ts]) for name, ts in ENROLLED.items()}, force=True)
    return g


def test_gallery_per_person_thresholds_take_effect_in_identify(world, encoder, tmp_path):
    # distances to Ann's nearest face (t = 0, 0.02): Ann 0.08, 0.13; Cat 0.28, 0.43; Bob 1.30, 1.38
    # distances to Bob's nearest face (t = 1, 1.02): Bob 0.30, 0.38; Cat 0.70, 0.55; Ann 0.90, 0.85
    g = _gallery(tmp_path / "people.db", encoder)
    overall, per, no_face = cal.calibrate_gallery(g, cal.folder_pairs(world / "people"), target_far=None, per_person=True)
    # global: genuine 0.08 0.13 0.30 0.38; impostors (nearest other person) 0.28 0.43 0.85 0.90 1.30 1.38:
    # the one best cut (9 of 10 right) is midway 0.38 .. 0.43
    assert overall.threshold == pytest.approx(0.405, abs=TOL) and overall.accuracy == pytest.approx(0.9)
    assert overall.n_genuine == 4 and overall.n_impostor == 6 and no_face == []
    assert per["Ann"]["threshold"] == pytest.approx(0.205, abs=TOL)  # midway 0.13 .. 0.28
    assert per["Bob"] == {"threshold": pytest.approx(0.465, abs=TOL), "n_genuine": 2, "n_impostor": 4}
    assert g.threshold == pytest.approx(overall.threshold)
    ann_probe, bob_probe = _line_image(0.25), _line_image(1.45)  # 0.23 from Ann, 0.43 from Bob
    assert [r.name for r in g.identify(np.stack([ann_probe, bob_probe]))] == [None, "Bob"]
    # the global threshold alone decides the other way for both
    assert [r.name for r in g.identify(np.stack([ann_probe, bob_probe]), max_distance=overall.threshold)] == ["Ann", None]
    g.close()
    with Gallery(tmp_path / "people.db", encoder) as again:  # stored in the file
        assert [r.name for r in again.identify(np.stack([ann_probe, bob_probe]))] == [None, "Bob"]


def test_gallery_calibration_with_a_target_far(world, encoder, tmp_path):
    with _gallery(tmp_path / "people.db", encoder) as g:
        overall, per, _ = cal.calibrate_gallery(g, cal.folder_pairs(world / "people"), target_far=0.0, store=False)
        assert per == {} and overall.far == 0.0
        assert overall.threshold == pytest.approx(0.28, abs=TOL)  # just under the nearest impostor
        assert g.meta["threshold_source"] == "auto"  # store=False wrote nothing


def test_gallery_calibration_needs_names(world, encoder, tmp_path):
    (tmp_path / "pairs.csv").write_text(f"{world}/people/Ann/Ann_0001.png,{world}/people/Bob/Bob_0001.png,0\n")
    with _gallery(tmp_path / "people.db", encoder) as g:
        with pytest.raises(DataError, match="needs each image's person"):
            cal.calibrate_gallery(g, cal.read_pair_file(tmp_path / "pairs.csv"))


def test_calibrate_pairs_on_folder_pairs(world, encoder):
    c, _ = cal.calibrate_pairs(encoder, cal.folder_pairs(world / "people"), target_far=None, metric="l2")
    pairs = list(itertools.chain.from_iterable(itertools.combinations(ts, 2) for ts in PROBES.values()))
    genuine = sorted(abs(a - b) for a, b in pairs)  # 0.05, 0.08, 0.15
    assert c.n_genuine == 3 and c.n_impostor == 3
    np.testing.assert_allclose(np.sort(c.scores[c.genuine]), genuine, atol=TOL)


def test_detect_uses_the_surest_face_and_reports_photos_without_one(tmp_path):
    import cv2
    from skimage.data import astronaut

    from facespace.photos.faces import crops_from_photos

    astro = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    Image.fromarray(astro).save(tmp_path / "astro.png")
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(tmp_path / "wall.png")
    enc = PixelEncoder(size=SIDE, channels=3)
    paths = [str(tmp_path / "astro.png"), str(tmp_path / "wall.png")]
    codes, no_face = cal.encode_files(enc, paths, detect=True)
    assert no_face == [paths[1]] and np.isnan(codes[1]).all()
    crop = crops_from_photos(paths[:1], size=SIDE, detect=True).images[0]
    np.testing.assert_allclose(codes[0], crop.reshape(-1), atol=1e-6)
    pairs = cal.LabelledPairs(paths, paths[::-1], np.array([True, False]), [None, None], [None, None])
    with pytest.raises(DataError, match="no pair is left .* without a face found, e.g. .*wall.png"):
        cal.calibrate_pairs(enc, pairs, detect=True)  # every pair holds the wall: nothing left
