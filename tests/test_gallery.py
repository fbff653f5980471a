"""The gallery: enrol without retraining, identify, reject strangers, durability, bad input."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image
import pytest
from people_helpers import TinyConfig, TinyEncoder, faces_of, patterns

from facespace.errors import DataError
from facespace.people.distances import open_set_scores
from facespace.people.gallery.gallery import Gallery, GalleryError
from facespace.models.pixels import PixelEncoder


@pytest.fixture(scope="module")
def people():
    """12 synthetic people: 8 to enrol (3 images + 2 probes each) and 4 strangers (2 probes each)."""
    rng = np.random.default_rng(6)
    bases = patterns(12, 16, seed=6)
    return {f"p{i}": faces_of(b, 5, rng) for i, b in enumerate(bases)}


def tiny(config: TinyConfig = TinyConfig()) -> TinyEncoder:
    """The test encoder with a quality reference from its own "training faces" (other synthetic people)."""
    from facespace.people.quality_reference import quality_reference

    model = TinyEncoder(config)
    rng = np.random.default_rng(99)
    train = np.concatenate([faces_of(b, 1, rng) for b in patterns(300, config.size, seed=99)])
    model.checkpoint_info = {"extra": {"quality": quality_reference(train, model=model).to_dict()}}
    return model


@pytest.fixture
def gallery(tmp_path, people):
    g = Gallery(tmp_path / "people.db", tiny())
    for i in range(8):
        g.enroll(f"p{i}", people[f"p{i}"][:3])
    yield g
    g.close()


def test_identifies_enrolled_people_and_rejects_strangers(gallery, people):
    known = np.concatenate([people[f"p{i}"][3:] for i in range(8)])
    strangers = np.concatenate([people[f"p{i}"][3:] for i in range(8, 12)])
    results = gallery.identify(np.concatenate([known, strangers]), k=3)
    names = [r.name for r in results]
    assert names[:16] == [f"p{i}" for i in range(8) for _ in range(2)]
    assert names[16:] == [None] * 8
    r = results[0]
    assert len(r.candidates) == 3 and r.candidates[0] == ("p0", pytest.approx(r.distance))
    assert [c[1] for c in r.candidates] == sorted(c[1] for c in r.candidates)


def test_threshold_is_calibrated_for_the_target_far(gallery):
    codes, person, names = gallery.codes()
    assert len(names) == 8 and codes.shape == (24, 24)
    _, impostor = open_set_scores(codes, person)
    t = gallery.threshold
    assert (impostor <= t).mean() <= 0.01  # false accepts within the target...
    assert t >= np.nextafter(impostor.min(), -np.inf)  # ...and no stricter than it needs to be
    assert gallery.calibrate(target_far=0.25) >= t
    assert (impostor <= gallery.threshold).mean() <= 0.25


def test_stranger_threshold_holds_the_target_with_its_confidence():
    from facespace.people.thresholds import stranger_threshold

    rng = np.random.default_rng(0)
    # impostor distances uniform on [0, 1]: a threshold t accepts a share t of all strangers
    over, plain_over = 0, 0
    for _ in range(400):
        scores = rng.random(1000)
        t, k = stranger_threshold(scores, 0.01, confidence=0.95)
        assert (scores <= t).sum() == k and k < 10  # fewer than the plain 1 % quantile's 10
        over += t > 0.01
        plain_over += np.sort(scores)[10] > 0.01  # the plain quantile's threshold, for contrast
    assert over / 400 <= 0.08  # exceeds the target in at most ~5 % of galleries (binomial slack)
    assert plain_over / 400 > 0.3  # while the plain quantile misses it about half the time
    t, k = stranger_threshold(np.array([0.5, 0.7]), 0.01)  # too few scores for the guarantee
    assert k == 0 and t < 0.5


def test_enrolling_a_name_twice_adds_unless_replace(gallery, people):
    assert gallery.enroll("p0", people["p0"][3:4]) == 4
    assert dict(gallery.list())["p0"] == 4
    assert gallery.enroll("p0", people["p0"][4:5], replace=True) == 1
    with pytest.raises(GalleryError, match="already enrolled as 'p0'"):
        gallery.enroll("p0", people["p0"][4:5])
    with pytest.raises(GalleryError, match="already enrolled as 'p1'.*Remove it"):
        gallery.enroll("p9", people["p1"][:1])
    with pytest.raises(GalleryError, match="same image twice"):
        gallery.enroll("p9", np.concatenate([people["p9"][:1]] * 2))
    assert "p9" not in dict(gallery.list())


def test_remove_and_reserved_names(gallery, people):
    assert gallery.remove("p7") == 3
    assert "p7" not in dict(gallery.list()) and len(gallery) == 7
    assert gallery.identify(people["p7"][3:4])[0].name is None  # now a stranger
    with pytest.raises(GalleryError, match="not enrolled"):
        gallery.remove("p7")
    for bad in ("unknown", "  ", "a\nb"):
        with pytest.raises(GalleryError):
            gallery.enroll(bad, people["p9"][:1])


def test_reopened_gallery_gives_the_same_answers(gallery, people, tmp_path):
    probes = np.concatenate([people["p2"][3:], people["p10"][3:]])
    before = gallery.identify(probes)
    gallery.close()
    with Gallery(tmp_path / "people.db", tiny()) as again:
        assert again.identify(probes) == before
        assert len(again.list()) == 8
    with Gallery(tmp_path / "people.db") as no_model:  # listing needs no model
        assert len(no_model) == 8


def test_another_model_is_refused(gallery, tmp_path):
    gallery.close()
    with pytest.raises(GalleryError, match="another model"):
        Gallery(tmp_path / "people.db", TinyEncoder(TinyConfig(seed=1)))


def test_empty_and_single_person_galleries(people, tmp_path):
    with Gallery(tmp_path / "g.db", tiny()) as g:
        with pytest.raises(GalleryError, match="nobody enrolled"):
            g.identify(people["p0"][:1])
        g.enroll("p0", people["p0"][:3])
        assert g.threshold is None
        with pytest.raises(GalleryError, match="enrol more people or pass max_distance"):
            g.identify(people["p0"][3:4])
        assert g.identify(people["p0"][3:4], max_distance=0.2)[0].name == "p0"
    with pytest.raises(GalleryError, match="no gallery"):
        Gallery(tmp_path / "missing.db")


def test_unusable_images_and_files(gallery, tmp_path):
    with pytest.raises(DataError, match="blank"):
        gallery.enroll("p9", np.zeros((1, 16, 16, 1), np.float32))
    text = tmp_path / "notes.db"
    text.write_text("this is not a database, it is text " * 50)
    with pytest.raises(GalleryError, match="not a facespace gallery"):
        Gallery(text, TinyEncoder())
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(GalleryError, match="not a facespace gallery"):
        Gallery(other, TinyEncoder())


def test_per_person_threshold(gallery, people):
    probe = people["p3"][3:4]
    assert gallery.identify(probe)[0].name == "p3"
    gallery.set_max_distance("p3", 0.0)
    assert gallery.identify(probe)[0].name is None


def test_failed_enrol_changes_nothing(gallery, people, monkeypatch):
    before = (gallery.list(), gallery.threshold, gallery.codes()[0])

    def boom(self):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Gallery, "_recalibrate", boom)
    with pytest.raises(RuntimeError):
        gallery.enroll("p9", people["p9"][:3])
    with pytest.raises(RuntimeError):
        gallery.enroll("p0", people["p0"][3:], replace=True)
    assert gallery.list() == before[0] and gallery.threshold == before[1]
    np.testing.assert_array_equal(gallery.codes()[0], before[2])


def test_killed_enrol_loses_nothing(gallery, people, tmp_path):
    # the raw-pixel encoder keeps the child process light (no torch)
    path = tmp_path / "pixels.db"
    with Gallery(path, PixelEncoder(size=16, channels=1)) as g:
        for i in range(4):
            g.enroll(f"p{i}", people[f"p{i}"][:3], force=True)
        before = (g.list(), g.threshold)
    np.save(tmp_path / "new.npy", people["p9"][:3])
    script = textwrap.dedent(f"""
        import os
        import numpy as np
        from facespace.people.gallery.gallery import Gallery
        from facespace.models.pixels import PixelEncoder
        Gallery._recalibrate = lambda self: os._exit(9)  # die inside the transaction, rows written
        g = Gallery({str(path)!r}, PixelEncoder(size=16, channels=1))
        g.enroll("p0", np.load({str(tmp_path / "new.npy")!r}), replace=True, force=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    with Gallery(path, PixelEncoder(size=16, channels=1)) as g:
        assert g.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert (g.list(), g.threshold) == before
        assert g.identify(people["p0"][3:4])[0].name == "p0"


def test_a_reader_is_not_blocked_by_a_writer(gallery, people, tmp_path):
    reader = Gallery(tmp_path / "people.db", tiny())
    gallery.db.execute("BEGIN IMMEDIATE")
    gallery.db.execute("INSERT INTO people (name, created) VALUES ('half', 0)")
    assert "half" not in dict(reader.list())  # sees the last committed state, at once
    assert reader.identify(people["p1"][3:4])[0].name == "p1"
    gallery.db.execute("COMMIT")
    assert "half" in dict(reader.list())
    reader.close()


def test_enroll_many_is_one_change(people, tmp_path):
    with Gallery(tmp_path / "many.db", tiny()) as g:
        counts = g.enroll_many({f"p{i}": people[f"p{i}"][:3] for i in range(6)})
        assert counts == {f"p{i}": 3 for i in range(6)} and g.threshold is not None
        with pytest.raises(GalleryError, match="given for both 'p6' and 'p7'"):
            g.enroll_many({"p6": people["p6"][:2], "p7": people["p6"][1:3]})
        with pytest.raises(GalleryError, match="already enrolled as 'p0'"):
            g.enroll_many({"p6": people["p6"][:2], "p7": people["p0"][:1]})
        assert len(g) == 6  # p6 was not added either
        assert [r.name for r in g.identify(np.concatenate([people[f"p{i}"][3:4] for i in range(6)]))] == \
            [f"p{i}" for i in range(6)]


def test_low_quality_enrolment_is_refused_unless_forced(gallery, people):
    from facespace.people.quality import LowQualityError

    good = people["p9"][:2]
    soft = np.stack([cv2_blur(img, 2.0) for img in people["p9"][2:4]])  # blurred copies
    before = gallery.list()
    with pytest.raises(LowQualityError, match=r"2 image\(s\) refused.*nothing was enrolled") as e:
        gallery.enroll("p9", np.concatenate([good, soft]))
    assert "array[2] (p9): blurry: Laplacian variance" in str(e.value)
    assert "array[3] (p9): blurry" in str(e.value) and "array[0]" not in str(e.value)
    assert gallery.list() == before  # nothing written
    assert gallery.enroll("p9", np.concatenate([good, soft]), force=True) == 4


def cv2_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img[..., 0], (0, 0), sigma)[..., None]


def test_identify_reports_quality(gallery, people):
    probes = np.concatenate([people["p2"][3:4], cv2_blur(people["p2"][4], 2.0)[None]])
    sharp, soft = gallery.identify(probes)
    assert sharp.quality.ok and sharp.quality.score >= 0.5
    assert not soft.quality.ok and soft.quality.score < sharp.quality.score
    assert any(r.startswith("blurry") for r in soft.quality.reasons)


def test_not_this_person_sticks(gallery, people, tmp_path):
    probe, other = people["p3"][3], people["p3"][4]
    assert gallery.identify(probe[None])[0].name == "p3"
    assert gallery.reject(probe, "p3") == 1
    again = gallery.identify(np.stack([probe, np.clip(probe + 0.002, 0, 1), other]), k=8)
    assert again[0].name != "p3" and "p3" not in [n for n, _ in again[0].candidates]
    assert again[1].name != "p3"  # a near-identical copy is covered too
    assert again[2].name == "p3"  # another photo of p3 is still p3
    gallery.close()
    with Gallery(tmp_path / "people.db", tiny()) as g:  # stored: it sticks after reopening
        assert g.identify(probe[None])[0].name != "p3"
        code = g.model.encode(people["p5"][3:4])[0]
        assert g.identify_codes(code)[0].name == "p5"
        assert g.reject(code, "p5") == 1  # a code works as well as an image
        assert g.identify_codes(code)[0].name != "p5"
        with pytest.raises(GalleryError, match="'nobody' is not enrolled"):
            g.reject(probe, "nobody")
        with pytest.raises(GalleryError, match="codes of size 24"):
            g.reject(np.zeros(7, np.float32), "p5")
        g.remove("p3")  # forgetting a person forgets their corrections
        assert len(g.rejections()[0]) == 1


def test_a_failed_first_enrol_leaves_no_gallery_and_identify_creates_none(tmp_path, run_cli):
    """#27.4: nothing is created until something is written."""
    from facespace.models.pixels import PixelEncoder
    from facespace.people.quality import LowQualityError

    path = tmp_path / "people.db"
    blank = np.zeros((2, 16, 16, 1), np.float32) + np.linspace(0, 1e-5, 16, dtype=np.float32)[None, :, None, None]
    with pytest.raises((LowQualityError, GalleryError, DataError)):
        with Gallery(path, PixelEncoder(size=16, channels=1)) as g:
            g.enroll("ann", blank)
    assert not path.exists() and not list(tmp_path.iterdir())
    with pytest.raises(GalleryError, match="no gallery at"):
        Gallery(tmp_path / "new.db", PixelEncoder(size=16, channels=1), create=False)
    assert not (tmp_path / "new.db").exists()
    face = tmp_path / "face.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)).save(face)
    code, _, err = run_cli("people", "identify", face, "--model", "pixels:16:grey", "--gallery", tmp_path / "new.db")
    assert code == 2 and "no gallery at" in err and not (tmp_path / "new.db").exists()


def test_a_damaged_gallery_is_refused_on_open_by_every_command(tmp_path, run_cli):
    """#27.7: PRAGMA quick_check on open; groups list and people list say the file is damaged."""
    from facespace.models.pixels import PixelEncoder

    path = tmp_path / "people.db"
    with Gallery(path, PixelEncoder(size=16, channels=1)) as g:
        for k in range(40):
            g.enroll(f"p{k:02d}", np.random.default_rng(k).random((2, 16, 16, 1), dtype=np.float32), force=True)
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page: 3 * page + 512] = b"\xde\xad\xbe\xef" * 128  # scribble over a page of face rows
    path.write_bytes(bytes(data))
    for args in (("groups", "list", "--gallery", path), ("people", "list", "--gallery", path)):
        code, _, err = run_cli(*args)
        assert code == 2 and "damaged" in err and "Traceback" not in err, (args, err)
