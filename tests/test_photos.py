"""Alignment, the photo pipeline (`faces_in_photo`) and `facespace faces`, on files the tests write."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facespace.photos import align
from facespace.photos.align import CropGeometry, align_face, central_crop, eye_roll, face_roll
from facespace.photos.detect import Detection
from facespace.errors import DataError, FacespaceError
from facespace.photos.faces import Face, draw_boxes, faces_in_photo, find_faces, read_photo

FACE_CENTRE_256 = np.array([112.5, 52.5])  # the astronaut's face in the 256x256 picture


def _near_face(face, scale: float = 1.0, tol: float = 14.0) -> bool:
    x, y, w, h = face.box
    return bool(np.all(np.abs(np.array([x + w / 2, y + h / 2]) - FACE_CENTRE_256 * scale) < tol * scale))


@pytest.fixture(scope="module")
def astro() -> np.ndarray:
    import cv2
    from skimage.data import astronaut

    return cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def photos(astro, tmp_path_factory):
    """Photo files: colour PNG, grey PNG, RGBA PNG, an EXIF-rotated JPEG, a blank one, a huge JPEG, junk."""
    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(astro).save(d / "astro.png")
    Image.fromarray(astro).convert("L").save(d / "grey.png")
    rgba = np.concatenate([astro, np.full((256, 256, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(d / "rgba.png")
    # stored turned a quarter counter-clockwise; EXIF orientation 6 says "turn clockwise to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(astro, 1))).save(d / "exif.jpg", quality=95, exif=exif)
    Image.fromarray(np.full((120, 200, 3), 200, np.uint8)).save(d / "blank.png")
    big = np.repeat(np.repeat(astro, 12, axis=0), 12, axis=1)  # 3072x3072
    Image.fromarray(big).save(d / "huge.jpg", quality=85)
    (d / "junk.jpg").write_bytes(b"not an image at all")
    return d


@pytest.fixture(scope="module")
def astro_faces(photos) -> list[Face]:
    return faces_in_photo(photos / "astro.png", size=32, detector="lbp")


# ---- alignment ----


def test_align_reproduces_the_central_crop(monkeypatch, rng):
    # a box whose geometry puts the training crop exactly on img[80:170, 80:170]
    monkeypatch.setitem(align.CROP_GEOMETRY, "unit", CropGeometry(dx=0.0, dy=0.0, side=0.9))
    img = rng.random((250, 250, 3), dtype=np.float32)
    det = Detection(box=(75, 75, 100, 100), score=1.0, detector="unit")
    crop = align_face(img, det, size=32)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.float32
    np.testing.assert_allclose(crop, central_crop(img, size=32), atol=1e-5)
    # and the central crop is the area average of img[80:170, 80:170]
    np.testing.assert_allclose(central_crop(img, size=45), img[80:170, 80:170].reshape(45, 2, 45, 2, 3).mean((1, 3)), atol=1e-5)


def test_levelling_undoes_a_roll(monkeypatch, astro):
    import cv2

    monkeypatch.setitem(align.CROP_GEOMETRY, "unit", CropGeometry(dx=0.0, dy=0.0, side=0.9))
    face = astro[:, 0:256].astype(np.float32) / 255
    box = (62, 2, 100, 100)  # around the face, centre (112, 52)
    upright = align_face(face, Detection(box, 1.0, detector="unit"), size=32)
    m = cv2.getRotationMatrix2D((112.0, 52.0), 20, 1.0)  # 20 degrees counter-clockwise
    tilted = cv2.warpAffine(face, m, (256, 256), borderMode=cv2.BORDER_REFLECT)
    levelled = align_face(tilted, Detection(box, 1.0, angle=20.0, detector="unit"), size=32)
    kept = align_face(tilted, Detection(box, 1.0, angle=20.0, detector="unit"), size=32, level=False)
    err_levelled, err_kept = np.abs(levelled - upright).mean(), np.abs(kept - upright).mean()
    assert err_levelled < 0.03 and err_levelled < err_kept / 3, (err_levelled, err_kept)


def test_eye_roll_known_answers():
    assert eye_roll(np.array([[10.0, 20.0], [30.0, 20.0]])) == pytest.approx(0.0)
    assert eye_roll(np.array([[10.0, 20.0], [30.0, 0.0]])) == pytest.approx(45.0)  # right eye higher: CCW
    assert eye_roll(np.array([[30.0, 0.0], [10.0, 20.0]])) == pytest.approx(45.0)  # order does not matter
    assert eye_roll(np.array([[10.0, 0.0], [30.0, 20.0]])) == pytest.approx(-45.0)


def test_face_roll_prefers_plausible_eyes():
    level_eyes = np.array([[40.0, 50.0], [60.0, 50.0]], np.float32)
    steep_eyes = np.array([[40.0, 50.0], [45.0, 10.0]], np.float32)  # 83 degrees: not a pair of eyes
    assert face_roll(Detection((0, 0, 100, 100), 1.0, level_eyes, angle=15.0)) == pytest.approx(0.0)
    assert face_roll(Detection((0, 0, 100, 100), 1.0, steep_eyes, angle=15.0)) == 15.0
    assert face_roll(Detection((0, 0, 100, 100), 1.0, None, angle=-10.0)) == -10.0


def test_align_channels_grey_and_alpha(rng):
    det = Detection((75, 75, 100, 100), 1.0)
    grey = rng.random((250, 250), dtype=np.float32)
    colour = align_face(grey, det, size=16)
    assert colour.shape == (16, 16, 3) and np.allclose(colour[..., 0], colour[..., 2])
    assert align_face(grey, det, size=16, grayscale=True).shape == (16, 16, 1)
    clear = np.zeros((250, 250, 4), np.uint8)  # fully transparent: composited onto white
    assert np.allclose(align_face(clear, det, size=8), 1.0)


def test_align_bad_input():
    with pytest.raises(FacespaceError, match="no crop geometry"):
        align_face(np.zeros((50, 50)), Detection((0, 0, 10, 10), 1.0, detector="mystery"))
    with pytest.raises(FacespaceError, match="no area"):
        align_face(np.zeros((50, 50)), Detection((0, 0, 0, 10), 1.0))
    with pytest.raises(FacespaceError, match="size"):
        align_face(np.zeros((50, 50)), Detection((0, 0, 10, 10), 1.0), size=0)


# ---- the photo pipeline ----


def test_one_face_in_a_photo(astro_faces):
    assert astro_faces and _near_face(astro_faces[0]), astro_faces
    crop = astro_faces[0].crop
    assert crop.shape == (32, 32, 3) and crop.dtype == np.float32 and 0 <= crop.min() and crop.max() <= 1
    assert astro_faces[0].scale == 1.0


def test_grey_rgba_and_exif_photos_give_the_same_face(photos, astro_faces):
    best = np.array(astro_faces[0].box)
    for name in ("grey.png", "rgba.png", "exif.jpg"):
        faces = faces_in_photo(photos / name, size=24, detector="lbp", max_faces=1)
        assert len(faces) == 1, name
        assert faces[0].crop.shape == (24, 24, 3), name
        np.testing.assert_allclose(faces[0].box, best, atol=6, err_msg=name)
    grey = faces_in_photo(photos / "grey.png", size=24, grayscale=True, detector="lbp", max_faces=1)
    assert grey[0].crop.shape == (24, 24, 1)


def test_no_face_is_an_empty_list(photos):
    assert faces_in_photo(photos / "blank.png") == []


def test_huge_photo_is_downscaled_and_boxed_in_file_pixels(photos, astro_faces):
    faces = faces_in_photo(photos / "huge.jpg", size=32, detector="lbp", max_faces=1)
    assert faces and faces[0].scale < 1
    # searched at another scale than the 256 px original, so the box may differ a little in size
    assert _near_face(faces[0], scale=12)
    assert 0.7 < faces[0].box[2] / (astro_faces[0].box[2] * 12) < 1.3


def test_arrays_and_bytes_are_photos_too(photos, astro, astro_faces):
    from_bytes = faces_in_photo((photos / "astro.png").read_bytes(), detector="lbp", max_faces=1)
    assert from_bytes[0].box == astro_faces[0].box
    image, scale = read_photo(astro)
    assert scale == 1.0 and image.dtype == np.float32 and image.max() <= 1.0


@pytest.mark.parametrize(
    "photo, error, words",
    [
        ("missing.jpg", DataError, "no such file"),
        ("junk.jpg", DataError, "junk.jpg"),
        (12345, FacespaceError, "path, encoded image bytes or an"),
        (np.zeros((3, 4, 5)), FacespaceError, "expected"),
    ],
)
def test_bad_photos_name_the_problem(photos, photo, error, words):
    if isinstance(photo, str):
        photo = photos / photo
    with pytest.raises(error, match=words):
        faces_in_photo(photo)


def test_find_faces_options_checked(astro):
    with pytest.raises(FacespaceError, match="max_faces"):
        find_faces(astro, max_faces=0)
    with pytest.raises(FacespaceError, match="scale"):
        find_faces(astro, scale=0.0)


def test_draw_boxes(astro, astro_faces):
    pic = draw_boxes(astro, astro_faces)
    assert pic.shape == (256, 256, 3) and pic.dtype == np.uint8
    assert not np.array_equal(pic, astro)  # something was drawn
    small = draw_boxes(astro, astro_faces, max_side=100)
    assert small.shape == (100, 100, 3)


# ---- the CLI ----


def test_cli_faces_writes_crops_and_boxes(run_cli, photos, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("photos", "detect", photos / "astro.png", photos / "blank.png", "--out", out,
                                   "--size", 48, "--detector", "lbp")
    assert code == 0, stderr
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert rows and all(r["photo"].endswith("astro.png") for r in rows)
    assert [r["face"] for r in rows] == list(range(len(rows)))
    assert "blank.png: no face found" in stderr
    assert Image.open(rows[0]["crop"]).size == (48, 48)
    assert (out / "astro.boxes.png").exists() and (out / "blank.boxes.png").exists()
    assert abs(rows[0]["x"] + rows[0]["width"] / 2 - FACE_CENTRE_256[0]) < 14


def test_cli_bad_photo_writes_nothing(run_cli, photos, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("photos", "detect", photos / "blank.png", photos / "junk.jpg", "--out", out)
    assert code == 2 and "error:" in stderr and "junk.jpg" in stderr
    assert not out.exists() or not any(out.iterdir())
    code, _, stderr = run_cli("photos", "detect", photos / "blank.png", "--out", out, "--angles", "a,b")
    assert code == 2 and "--angles" in stderr


def test_crops_from_photos_with_and_without_detection(photos):
    from facespace.photos.faces import crops_from_photos

    files = [photos / "astro.png", photos / "blank.png"]
    plain = crops_from_photos(files, size=32)
    assert plain.images.shape == (2, 32, 32, 3) and plain.boxes == [None, None] and plain.no_face == []
    assert plain.labels() == [str(f) for f in files]
    found = crops_from_photos(files, size=24, grayscale=True, detect=True, detector="lbp")
    assert len(found) >= 1 and found.images.shape[1:] == (24, 24, 1)
    assert set(found.sources) == {str(photos / "astro.png")} and found.no_face == [str(photos / "blank.png")]
    assert all(b is not None for b in found.boxes)
    assert found.labels()[0] == f"{photos / 'astro.png'}#0"
    with pytest.raises(DataError):
        crops_from_photos([photos / "junk.jpg"], detect=True)
