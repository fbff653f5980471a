"""read_image / decode_face / load_images: robust decoding, known answers, clear errors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facespace.data import load_images, read_image
from facespace.data.crops import parse_crop
from facespace.data.images import TIGHT_BOX, crop_box, decode_face, face_frame
from facespace.errors import DataError


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _target(centre=(200, 40, 120), border=(10, 250, 30)) -> Image.Image:
    """250x250 image: the LFW crop [80:170, 80:170] is one colour, the border another."""
    a = np.empty((250, 250, 3), np.uint8)
    a[:] = border
    a[80:170, 80:170] = centre
    return Image.fromarray(a)


def test_lfw_crop_known_answer(tmp_path):
    p = tmp_path / "x.png"
    _target().save(p)
    arr, grey = decode_face(p, 32, crop="lfw")
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8 and not grey
    assert (arr == np.array([200, 40, 120], np.uint8)).all()  # nothing of the border leaks in
    whole, _ = decode_face(p, 25, crop=None)  # 250 -> 25: 10x10 blocks averaged exactly
    assert (whole[0, 0] == [10, 250, 30]).all() and (whole[12, 12] == [200, 40, 120]).all()


def test_area_average_is_a_box_mean(rng, tmp_path):
    a = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    p = tmp_path / "g.png"
    Image.fromarray(a).save(p)
    arr, grey = decode_face(p, 16, crop=None, grayscale=True)
    expected = a.reshape(16, 4, 16, 4).mean(axis=(1, 3))
    assert grey and arr.shape == (16, 16, 1)
    assert np.abs(arr[..., 0] - expected).max() <= 1.0  # the mean, within one grey level (fixed point)


def test_crop_box_specs():
    assert crop_box("lfw", 250, 250) == (80, 80, 170, 170)
    assert crop_box("lfw", 64, 64) is None  # not an LFW original: used whole
    assert crop_box((80, 80, -80, -80), 250, 250) == (80, 80, 170, 170)
    assert crop_box((0.25, 0.0, 0.75, 1.0), 100, 40) == (10, 0, 30, 100)
    with pytest.raises(DataError, match="does not fit"):
        crop_box((0, 0, 300, 300), 250, 250, name="x.jpg")
    with pytest.raises(DataError, match="unknown crop"):
        crop_box("centre", 250, 250)
    assert parse_crop("lfw") == "lfw" and parse_crop("none") is None
    assert parse_crop("80,80,-80,-80") == (80, 80, -80, -80)
    with pytest.raises(DataError, match="four numbers"):
        parse_crop("1,2,3")


def test_a_face_crop_is_padded_out_to_a_model_box_wider_than_the_tight_face(rng, tmp_path):
    # a 250x250 "LFW original", and its tight face (TIGHT_BOX) saved as a file of its own
    original = rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)
    t, l, b, r = TIGHT_BOX
    Image.fromarray(original).save(tmp_path / "original.png")
    Image.fromarray(original[t:b, l:r]).save(tmp_path / "face.png")
    union = "lfw:50,45,210,205"  # the identity ensemble's box: 20 px around the tight face on every side
    assert face_frame(union, 120, 120) == (20 / 120, 20 / 120, 20 / 120, 20 / 120)
    whole, _ = decode_face(tmp_path / "original.png", 160, crop=union)
    face, _ = decode_face(tmp_path / "face.png", 160, crop=union)
    # the face lands exactly where the original's box holds it; the margins repeat its edge pixels
    assert np.array_equal(face[20:140, 20:140], whole[20:140, 20:140])
    assert np.array_equal(face[:20, 20:140], np.broadcast_to(face[20:21, 20:140], (20, 120, 3)))
    assert np.array_equal(face[20:140, :20], np.broadcast_to(face[20:140, 20:21], (120, 20, 3)))
    # nothing is added for the LFW original itself, other crops, or a box inside the tight face
    assert face_frame(union, 250, 250) is None and face_frame("lfw", 92, 112) is None
    assert face_frame("lfw:80,80,170,170", 92, 112) is None and face_frame(None, 92, 112) is None
    # a non-square portrait gets margins in proportion to its own height and width
    Image.fromarray(original[:112, :92]).save(tmp_path / "portrait.png")
    padded, _ = decode_face(tmp_path / "portrait.png", 40, crop=union)
    assert padded.shape == (40, 40, 3)


def test_jpeg_draft_stays_close_to_full_decode(rng, tmp_path):
    # smooth content, like a face: the reduced-scale JPEG decode must agree with a full decode
    y, x = np.mgrid[0:250, 0:250] / 250.0
    a = np.stack([np.sin(6 * x) * 0.5 + 0.5, np.cos(5 * y) * 0.5 + 0.5, x * y], -1)
    a = (a * 255 + rng.normal(0, 4, a.shape)).clip(0, 255).astype(np.uint8)
    p = tmp_path / "f.jpg"
    Image.fromarray(a).save(p, quality=90)
    fast, _ = decode_face(p, 32, crop="lfw")
    ref = Image.open(p).convert("RGB").crop((80, 80, 170, 170)).resize((32, 32), Image.Resampling.BOX)
    diff = np.abs(fast.astype(float) - np.asarray(ref, float)) / 255
    assert diff.mean() < 0.02 and diff.max() < 0.1


def test_read_image_modes(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 255
    assert read_image(_png_bytes(Image.fromarray(rgb))).shape == (6, 8, 3)
    grey = read_image(_png_bytes(Image.fromarray(np.full((6, 8), 128, np.uint8))))
    assert grey.shape == (6, 8, 1) and grey.dtype == np.float32 and np.allclose(grey, 128 / 255)
    sixteen = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert np.allclose(read_image(_png_bytes(sixteen)), 1.0)
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black -> white background
    assert np.allclose(read_image(_png_bytes(Image.fromarray(rgba, "RGBA"))), 1.0)
    pal = Image.fromarray(rgb).convert("P")
    assert np.allclose(read_image(_png_bytes(pal))[..., 0], 1.0)
    p = tmp_path / "a.pgm"
    Image.fromarray(np.full((5, 5), 51, np.uint8)).save(p)
    assert np.allclose(read_image(p), 0.2)


def test_exif_orientation_is_honoured():
    a = np.zeros((10, 20, 3), np.uint8)  # 20 wide, 10 high; left half red
    a[:, :10, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    img = read_image(buf.getvalue())
    assert img.shape == (20, 10, 3)  # width and height swapped
    assert img[:10, :, 0].mean() > 0.8 and img[10:, :, 0].mean() < 0.2  # red on top after rotation
    face, _ = decode_face(buf.getvalue(), 8, crop=None)
    assert face[:4, :, 0].mean() > 200


def test_max_side_downscales(tmp_path):
    p = tmp_path / "big.jpg"
    Image.fromarray(np.full((400, 800, 3), 90, np.uint8)).save(p)
    img = read_image(p, max_side=100)
    assert img.shape == (50, 100, 3) and abs(img.mean() - 90 / 255) < 0.02


def test_pixel_limit_and_forged_bomb_header(tmp_path):
    p = tmp_path / "a.png"
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(p)
    with pytest.raises(DataError, match=r"a\.png.*more than the limit of 1,000.*shrink it first"):
        read_image(p, max_pixels=1000)
    # a PNG whose header claims 100000 x 100000 pixels: refused from the header, nothing decoded
    data = bytearray(_png_bytes(Image.fromarray(np.zeros((2, 2), np.uint8))))
    ihdr = data[12:29]
    ihdr[4:12] = struct.pack(">II", 100_000, 100_000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bytes(data))
    with pytest.raises(DataError, match="bomb.png.*decompression bomb"):
        read_image(bomb)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.jpg: no such file"):
        read_image(tmp_path / "missing.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(DataError, match="notes.jpg: not an image"):
        read_image(text)
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good, "JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(DataError, match="cut.jpg.*truncated"):
        read_image(cut)
    with pytest.raises(DataError, match="cut.jpg"):
        decode_face(cut, 8)


def test_load_images_matches_decode_and_checks(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        _target(centre=(i * 50, 100, 200)).save(p)
        paths.append(p)
    out = load_images(paths, size=16)
    assert out.shape == (3, 16, 16, 3) and out.dtype == np.float32
    assert np.allclose(out[2, ..., 0], 100 / 255) and np.allclose(out[:, ..., 2], 200 / 255)
    assert load_images([paths[0]], size=16, grayscale=True).shape == (1, 16, 16, 1)
    with pytest.raises(DataError, match="size must be a positive integer"):
        load_images(paths, size=0)
    with pytest.raises(DataError, match="nope.png"):
        load_images([paths[0], tmp_path / "nope.png"], size=16)


def test_folder_scans_find_images_by_content_and_skip_broken_links(tmp_path, run_cli):
    """#27.8 and #27.6: GIFs and extension-less images are found (the Yale set's subject01.happy);
    a dangling link and a loop of links are skipped with a warning, and stop a --strict scan."""
    import json
    import os

    from PIL import Image

    from facespace.data.folders import scan_folder
    from facespace.data.inputs import expand_images
    from facespace.errors import DataError, DataWarning

    rng = np.random.default_rng(0)
    face = (rng.random((20, 20)) * 255).astype(np.uint8)
    Image.fromarray(face).save(tmp_path / "subject01.happy", format="PNG")
    Image.fromarray(face).save(tmp_path / "subject01.sad", format="GIF")
    Image.fromarray(face).save(tmp_path / "b.gif")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "readme").write_text("not an image either")
    assert [e.relpath for e in scan_folder(tmp_path)] == ["b.gif", "subject01.happy", "subject01.sad"]
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    os.symlink(tmp_path / "loop2", tmp_path / "loop1")
    os.symlink(tmp_path / "loop1", tmp_path / "loop2")
    skipped = []
    with pytest.warns(DataWarning, match="skipped 3 broken link"):
        found = scan_folder(tmp_path, skipped=skipped)
    assert len(found) == 3 and sorted(skipped) == [("dangling.png", "dangling symlink"), ("loop1", "symlink loop"),
                                                   ("loop2", "symlink loop")]
    with pytest.raises(DataError, match="dangling symlink|symlink loop"):
        scan_folder(tmp_path, strict=True)
    with pytest.warns(DataWarning):
        assert len(expand_images([tmp_path])) == 3  # people enroll, groups add: the same set
    code, out, _ = run_cli("data", "info", tmp_path, "--json", "--no-cache")
    report = json.loads(out)
    assert code == 0 and report["images"] == 3 and any("broken link" in s for s in report["skipped"])
