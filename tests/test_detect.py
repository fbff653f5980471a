"""Face detection on a real photo (scikit-image's astronaut) and composites of it."""

from __future__ import annotations

import numpy as np
import pytest

from facespace.photos.detect import DETECTORS, Detection, _group_windows, _haar_available, detect_faces, to_gray_uint8
from facespace.errors import FacespaceError

# the astronaut's face, measured by eye on the 512x512 original: centre (x, y) and about its side
FACE_CENTRE_512 = np.array([225.0, 105.0])


def _resize(img: np.ndarray, side: int) -> np.ndarray:
    import cv2

    return cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)


def _rotate(img: np.ndarray, degrees: float, centre) -> np.ndarray:
    import cv2

    m = cv2.getRotationMatrix2D(tuple(float(c) for c in centre), degrees, 1.0)
    return cv2.warpAffine(img, m, img.shape[1::-1], borderValue=(128, 128, 128))


@pytest.fixture(scope="module")
def astro() -> np.ndarray:
    """The astronaut at 256x256 uint8: one face of about 50 px, centred near (112, 52)."""
    from skimage.data import astronaut

    return _resize(astronaut(), 256)


@pytest.fixture(scope="module")
def astro_faces(astro) -> list[Detection]:
    return detect_faces(astro, detector="lbp")


def _is_astronaut(det: Detection, scale: float = 0.5, tol: float = 12) -> bool:
    return bool(np.all(np.abs(np.array(det.center) - FACE_CENTRE_512 * scale) < tol * scale * 2))


def test_finds_the_astronaut_first(astro_faces):
    assert astro_faces, "no face found in the astronaut photo"
    best = astro_faces[0]
    assert _is_astronaut(best), best
    assert 35 <= best.box[2] <= 80  # a ~50 px face
    assert best.landmarks is None and best.angle == 0.0 and best.detector == "lbp"
    assert [d.score for d in astro_faces] == sorted((d.score for d in astro_faces), reverse=True)


def test_float_grey_and_rgba_inputs_agree(astro, astro_faces):
    best = astro_faces[0].box
    grey = to_gray_uint8(astro)
    rgba = np.concatenate([astro, np.full(astro.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    for variant in (astro.astype(np.float32) / 255, grey, grey[..., None], rgba):
        found = detect_faces(variant, detector="lbp")
        assert found and found[0].box == best


def test_blank_and_flat_images_have_no_face():
    assert detect_faces(np.zeros((120, 160, 3), np.float32)) == []
    assert detect_faces(np.full((50, 50), 0.7, np.float32)) == []
    assert detect_faces(np.zeros((10, 10, 3), np.uint8)) == []  # smaller than min_size


def test_two_faces_side_by_side(astro):
    pair = np.concatenate([astro, astro[:, ::-1]], axis=1)  # (256, 512): the face and its mirror image
    found = detect_faces(pair, detector="lbp")
    centres = sorted(d.center for d in found[:2])  # the two best: both faces, each with its own box
    assert len(centres) == 2, found
    (lx, ly), (rx, ry) = centres
    assert abs(lx - 112) < 12 and abs(rx - (512 - 112)) < 12 and abs(ly - ry) < 6


def test_huge_image_is_searched_downscaled_and_boxed_in_its_own_pixels(astro, astro_faces):
    huge = np.repeat(np.repeat(astro, 12, axis=0), 12, axis=1)  # 3072x3072
    found = detect_faces(huge, detector="lbp", max_side=256)
    assert found
    np.testing.assert_allclose(found[0].box, np.array(astro_faces[0].box) * 12, atol=12)


def test_rotated_face_is_found_with_its_roll(astro):
    # turn the photo 25 degrees counter-clockwise about the face (on a grey margin, so that no
    # mirrored border lands next to the head): searching at rolls finds the face and reports a
    # positive (counter-clockwise) roll; the mirror image gives a negative one
    import cv2

    padded = cv2.copyMakeBorder(astro, 64, 0, 32, 32, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    centre = FACE_CENTRE_512 / 2 + (32, 64)
    tilted = _rotate(padded, 25, centre)
    found = detect_faces(tilted, detector="lbp", angles=(-25, 25))
    face = [d for d in found if np.all(np.abs(np.array(d.center) - centre) < 25)]
    assert face, found
    assert 10 <= face[0].angle <= 30
    mirrored = detect_faces(tilted[:, ::-1], detector="lbp", angles=(-25, 25))
    centre_m = (tilted.shape[1] - centre[0], centre[1])
    face = [d for d in mirrored if np.all(np.abs(np.array(d.center) - centre_m) < 25)]
    assert face and -30 <= face[0].angle <= -10, mirrored


def test_group_windows_known_answer():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [2, 0, 10, 10], [50, 50, 10, 10], [52, 51, 9, 9]], float)
    groups = sorted(sorted(g.tolist()) for g in _group_windows(boxes))
    assert groups == [[0, 1, 2], [3, 4]]
    assert _group_windows(np.zeros((0, 4))) == []


@pytest.mark.parametrize(
    "image, options, words",
    [
        (np.zeros((5, 5, 5), np.float32), {}, "expected (H, W) or (H, W, C)"),
        (np.zeros((2, 8, 8, 3), np.float32), {}, "one at a time"),
        (np.full((8, 8), np.nan, np.float32), {}, "NaN"),
        (np.zeros((8, 8), np.int32), {}, "dtype"),
        (np.zeros((64, 64)), {"detector": "yolo"}, "expected one of: auto, lbp, haar"),
        (np.zeros((64, 64)), {"min_size": 2}, "min_size"),
        (np.zeros((64, 64)), {"scale_factor": 1.0}, "scale_factor"),
        (np.zeros((64, 64)), {"min_neighbors": 0}, "min_neighbors"),
        (np.zeros((64, 64)), {"max_side": 10}, "max_side"),
    ],
)
def test_bad_input_says_what_to_do(image, options, words):
    with pytest.raises(FacespaceError, match=words.replace("(", r"\(").replace(")", r"\)")):
        detect_faces(image, **options)


def test_detectors_listed():
    assert DETECTORS == ("auto", "lbp", "haar", "dlib-hog", "dlib-cnn")


@pytest.mark.skipif(_haar_available(), reason="this OpenCV has Haar cascades (OpenCV 4)")
def test_haar_on_opencv5_says_how_to_get_it():
    with pytest.raises(FacespaceError, match="opencv-python-headless<5"):
        detect_faces(np.zeros((64, 64), np.float32), detector="haar")


@pytest.mark.skipif(not _haar_available(), reason="needs OpenCV 4's Haar cascades")
def test_haar_finds_the_astronaut_with_level_eyes(astro):
    found = detect_faces(astro, detector="haar")
    assert found and _is_astronaut(found[0]), found
    assert found[0].detector == "haar"
    eyes = found[0].landmarks
    if eyes is not None:  # two eyes, left one first, both in the face box's upper half
        x, y, w, h = found[0].box
        assert eyes.shape == (2, 2) and eyes[0, 0] < eyes[1, 0]
        assert np.all((eyes[:, 1] > y) & (eyes[:, 1] < y + 0.6 * h))
