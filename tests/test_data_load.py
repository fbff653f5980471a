"""load_faces on every kind of source, the cache, and bad input."""

from __future__ import annotations

import os
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import LFW, needs_lfw
from PIL import Image

from facespace.data import DataWarning, cache_entry, load_faces
from facespace.errors import DataError

PEOPLE = {"Alice_Smith": 3, "Bob_Jones": 2, "Carol_White": 1}


def _face(seed: int, size: int = 250) -> np.ndarray:
    """A smooth synthetic colour image, different per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    f = rng.uniform(2, 8, 3)
    a = np.stack([np.sin(f[0] * x + f[1] * y), np.cos(f[1] * x), np.sin(f[2] * y)], -1) * 0.5 + 0.5
    return (a * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def lfw_dir(tmp_path_factory) -> Path:
    """A tiny folder in the official LFW layout, plus a .tgz of it with the official top folder."""
    base = tmp_path_factory.mktemp("lfw")
    root = base / "lfw-deepfunneled"
    seed = 0
    for name, k in PEOPLE.items():
        (root / name).mkdir(parents=True)
        for i in range(1, k + 1):
            Image.fromarray(_face(seed)).save(root / name / f"{name}_{i:04d}.jpg", quality=90)
            seed += 1
    (root / "README.txt").write_text("not an image, ignored")
    with tarfile.open(base / "lfw-deepfunneled.tgz", "w:gz") as tar:
        tar.add(root, arcname="lfw-deepfunneled")
    return root


def _load(source, **kw):
    kw.setdefault("progress", False)
    return load_faces(source, **kw)


def test_lfw_folder(lfw_dir):
    faces = _load(lfw_dir, size=16, cache=False)
    assert faces.images.shape == (6, 16, 16, 3) and faces.images.dtype == np.float32
    assert 0.0 <= faces.images.min() and faces.images.max() <= 1.0
    assert faces.people() == PEOPLE
    assert faces.paths[0] == str(lfw_dir.resolve() / "Alice_Smith" / "Alice_Smith_0001.jpg")
    assert len(set(map(bytes, faces.images))) == 6  # six different images
    grey = _load(lfw_dir, size=16, grayscale=True, cache=False)
    assert grey.images.shape == (6, 16, 16, 1)
    # the parent of the LFW folder works too: names still come from the LFW file names
    assert _load(lfw_dir.parent / "lfw-deepfunneled", size=8, cache=False).people() == PEOPLE


def test_tgz_equals_folder_and_parallel_equals_serial(lfw_dir):
    folder = _load(lfw_dir, size=16, cache=False, workers=1)
    archive = _load(lfw_dir.parent / "lfw-deepfunneled.tgz", size=16, cache=False, workers=2)
    assert np.array_equal(folder.images, archive.images)
    assert list(folder.names) == list(archive.names)
    assert archive.paths[0].endswith("lfw-deepfunneled.tgz::lfw-deepfunneled/Alice_Smith/Alice_Smith_0001.jpg")
    parallel = _load(lfw_dir, size=16, cache=False, workers=2)
    assert np.array_equal(folder.images, parallel.images) and list(folder.paths) == list(parallel.paths)


def test_other_archive_compressions(lfw_dir, tmp_path):
    folder = _load(lfw_dir, size=8, cache=False)
    for mode, name in (("w:xz", "lfw.tar.xz"), ("w:bz2", "lfw.tar.bz2"), ("w", "lfw.tar")):
        with tarfile.open(tmp_path / name, mode) as tar:
            tar.add(lfw_dir, arcname="lfw")
        archive = _load(tmp_path / name, size=8, cache=False, workers=1)
        assert np.array_equal(folder.images, archive.images) and list(folder.names) == list(archive.names)


def test_lfwcrop_flat_pgm_folder(tmp_path):
    faces_dir = tmp_path / "lfwcrop_grey" / "faces"
    faces_dir.mkdir(parents=True)
    for name, k in PEOPLE.items():
        for i in range(1, k + 1):
            Image.fromarray(_face(i, 64)[..., 0]).save(faces_dir / f"{name}_{i:04d}.pgm")
    (tmp_path / "lfwcrop_grey" / "lists").mkdir()
    (tmp_path / "lfwcrop_grey" / "lists" / "01_train_same.txt").write_text("x")
    for root in (faces_dir, tmp_path / "lfwcrop_grey"):
        faces = _load(root, size=32, cache=False)
        assert faces.people() == PEOPLE
        assert faces.images.shape == (6, 32, 32, 3)  # grey replicated, no warning: all are grey
        assert np.array_equal(faces.images[..., 0], faces.images[..., 2])
    # "lfw" crops only 250x250 LFW originals; these 64x64 crops are used whole
    whole = _load(faces_dir, size=64, grayscale=True, cache=False)
    assert np.allclose(whole.images[0, ..., 0], _face(1, 64)[..., 0] / 255, atol=1e-6)


def test_mixed_recursive_folder(tmp_path):
    (tmp_path / "alice" / "2020").mkdir(parents=True)
    (tmp_path / "bob").mkdir()
    Image.fromarray(_face(1, 40)).save(tmp_path / "alice" / "IMG_0001.jpg")
    Image.fromarray(_face(2, 40)).save(tmp_path / "alice" / "2020" / "beach.PNG")
    Image.fromarray(_face(3, 40)).save(tmp_path / "bob" / "b.bmp")
    Image.fromarray(_face(4, 40)).save(tmp_path / "bob" / "c.webp")
    Image.fromarray(_face(5, 40)).save(tmp_path / "loose.png")
    (tmp_path / ".hidden.png").write_bytes(b"skipped: hidden")
    faces = _load(tmp_path, size=8, cache=False)
    assert len(faces) == 5
    assert dict(zip([Path(p).name for p in faces.paths], faces.names)) == {
        "IMG_0001.jpg": "alice", "beach.PNG": "alice", "b.bmp": "bob", "c.webp": "bob", "loose.png": "loose"}
    (tmp_path / "alice").rename(tmp_path / "x")
    flat = tmp_path / "x" / "2020"
    assert _load(flat, size=8, cache=False).names is None  # no identity anywhere


def test_sklearn_lfw_home(lfw_dir, tmp_path):
    home = tmp_path / "scikit_learn_data" / "lfw_home"
    (home / "joblib").mkdir(parents=True)
    (home / "pairsDevTrain.txt").write_text("1\n")
    os.symlink(lfw_dir, home / "lfw_funneled")
    for source in (home, home.parent):
        faces = _load(source, size=8, cache=False)
        assert faces.people() == PEOPLE
    empty = tmp_path / "other" / "lfw_home"
    empty.mkdir(parents=True)
    with pytest.raises(DataError, match="lfw_funneled"):
        _load(empty)


def test_embedded():
    faces = load_faces("embedded", size=25, grayscale=True)
    from skimage.data import lfw_subset

    assert np.allclose(faces.images[..., 0], lfw_subset(), atol=1e-6)  # 25 -> 25: the original pixels
    assert faces.names is None and faces.labels["is_face"].tolist() == [True] * 100 + [False] * 100
    rgb = load_faces("embedded")
    assert rgb.images.shape == (200, 32, 32, 3) and rgb.images.dtype == np.float32


def test_cache_warm_is_mmap_and_keyed(lfw_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACESPACE_CACHE", str(tmp_path / "cache"))
    cold = _load(lfw_dir, size=12)
    entry = cache_entry(lfw_dir, size=12)
    assert entry.is_file() and entry.with_suffix(".json").is_file()
    warm = _load(lfw_dir, size=12)
    assert isinstance(warm.images.base, np.memmap)  # a memory-mapped read
    assert np.array_equal(cold.images, warm.images) and list(cold.names) == list(warm.names)
    assert list(cold.paths) == list(warm.paths)
    # another parameter is another entry; the first stays
    assert cache_entry(lfw_dir, size=12, grayscale=True) != entry
    # touching a file changes the key: the next load decodes again and replaces the stale entry
    f = lfw_dir / "Bob_Jones" / "Bob_Jones_0001.jpg"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        assert cache_entry(lfw_dir, size=12) != entry
        _load(lfw_dir, size=12)
        assert not entry.exists() and cache_entry(lfw_dir, size=12).is_file()
    finally:
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not list((tmp_path / "cache").rglob(".*.tmp"))  # no temporary files left behind
    arch = lfw_dir.parent / "lfw-deepfunneled.tgz"
    a = _load(arch, size=12)
    assert cache_entry(arch, size=12).is_file() and np.array_equal(_load(arch, size=12).images, a.images)


def test_corrupt_images_skipped_with_one_warning(lfw_dir, tmp_path):
    root = tmp_path / "set"
    (root / "Dan_Brown").mkdir(parents=True)
    for i in range(1, 5):
        Image.fromarray(_face(i)).save(root / "Dan_Brown" / f"Dan_Brown_{i:04d}.jpg")
    (root / "Dan_Brown" / "Dan_Brown_0005.jpg").write_text("this is text")
    data = (root / "Dan_Brown" / "Dan_Brown_0001.jpg").read_bytes()
    (root / "Dan_Brown" / "Dan_Brown_0006.jpg").write_bytes(data[: len(data) // 3])
    with pytest.warns(DataWarning) as record:
        faces = _load(root, size=8)
    assert len(faces) == 4 and len(record) == 1
    message = str(record[0].message)
    assert "skipped 2 of 6" in message and "Dan_Brown_0005.jpg" in message and "Dan_Brown_0006.jpg" in message
    with pytest.warns(DataWarning, match="skipped 2 of 6"):  # the warm load says it too
        _load(root, size=8)
    with pytest.raises(DataError, match="2 of 6 images.*strict"):
        _load(root, size=8, strict=True)
    with pytest.raises(DataError, match="2 of 6 images.*strict"):
        _load(root, size=8, strict=True, cache=False)


def test_grey_image_in_colour_set_warns(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(_face(1, 30)).save(tmp_path / "a" / "c1.png")
    Image.fromarray(_face(2, 30)).save(tmp_path / "a" / "c2.png")
    Image.fromarray(_face(3, 30)[..., 1]).save(tmp_path / "a" / "g.png")
    with pytest.warns(DataWarning, match=r"1 of 3 images .* grey .*g\.png.*grayscale=True"):
        faces = _load(tmp_path, size=8, cache=False)
    assert faces.images.shape == (3, 8, 8, 3)
    g = faces.images[list(faces.paths).index(str(tmp_path.resolve() / "a" / "g.png"))]
    assert np.array_equal(g[..., 0], g[..., 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _load(tmp_path, size=8, cache=False, grayscale=True)  # no warning when asking for grey


def test_bad_sources(tmp_path):
    with pytest.raises(DataError, match="nowhere: no such file or folder"):
        _load(tmp_path / "nowhere")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "list.txt").write_text("x")
    with pytest.raises(DataError, match="empty: no images found"):
        _load(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="notes.txt: a single file"):
        _load(tmp_path / "notes.txt")
    (tmp_path / "fake.tgz").write_text("definitely not gzip")
    with pytest.raises(DataError, match="fake.tgz: cannot read the archive"):
        _load(tmp_path / "fake.tgz", cache=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_text("x")
    with pytest.raises(DataError, match="none of the 1 images"):
        _load(tmp_path / "bad", cache=False)
    with pytest.raises(DataError, match="size must be"):
        _load("embedded", size=-3)
    with pytest.raises(DataError, match="unknown crop"):
        _load("embedded", crop="middle")


def test_truncated_tgz_fails_and_caches_nothing(lfw_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACESPACE_CACHE", str(tmp_path / "cache"))
    data = (lfw_dir.parent / "lfw-deepfunneled.tgz").read_bytes()
    # anywhere: inside a member, between members, or only the gzip trailer (checksum) missing
    for k, end in enumerate((len(data) // 4, len(data) // 2, 3 * len(data) // 4, len(data) - 8, len(data) - 1)):
        cut = tmp_path / f"cut{k}.tgz"
        cut.write_bytes(data[:end])
        with pytest.raises(DataError, match=f"cut{k}.tgz: cannot read the archive.*truncated"):
            _load(cut, workers=2 if k == 1 else 1)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.npy"))


def test_unwritable_cache_warns_and_still_loads(lfw_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache cannot be a folder under a file")
    monkeypatch.setenv("FACESPACE_CACHE", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="could not write the face cache"):
        faces = _load(lfw_dir, size=8)
    assert len(faces) == 6


def test_symlink_loop_is_walked_once(lfw_dir, tmp_path):
    root = tmp_path / "photos" / "Alice_Smith"
    root.mkdir(parents=True)
    Image.fromarray(_face(9, 40)).save(root / "Alice_Smith_0001.png")
    os.symlink(tmp_path / "photos", root / "loop")
    assert len(_load(tmp_path / "photos", size=8, cache=False)) == 1


@needs_lfw
def test_real_lfw_people_match_a_plain_pillow_loop(tmp_path):
    people = sorted(os.listdir(LFW))[:25]
    for name in people:
        os.symlink(LFW / name, tmp_path / name)
    faces = _load(tmp_path, size=32, cache=False, workers=2)
    files = sorted(tmp_path.glob("*/*.jpg"))
    assert len(faces) == len(files) and set(faces.people()) == set(people)
    assert sum(faces.people().values()) == len(files)
    ref = np.stack([np.asarray(Image.fromarray(np.asarray(Image.open(f).convert("RGB"))[80:-80, 80:-80])
                               .resize((32, 32), Image.Resampling.BOX), np.float32) / 255 for f in files])
    assert np.abs(faces.images - ref).mean() < 0.02  # the reduced-scale JPEG decode stays faithful
