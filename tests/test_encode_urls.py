"""Images where they lie: URLs read through fsspec (and .txt lists of them) encode to the codes of the
same files on disk, alone and on a cluster; a missing URL or a missing fsspec is named clearly."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from PIL import Image

from facespace.errors import DataError
from facespace.models.pixels import PixelEncoder
from facespace.pipelines.encoding import encode_sources
from facespace.pipelines.export.cluster import encode_on_cluster
from facespace.pipelines.export.read import load_codes
from facespace.pipelines.export.shards import encode_to_shards
from test_encode_cluster import N, SHARD, needs_dask, net, one_thread, photos, single  # noqa: F401 (fixtures)

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def store(request):
    """A folder of fsspec's in-process `memory://` file system, emptied afterwards: `(url, fs)`."""
    fs = fsspec.filesystem("memory")
    root = f"/facespace-{request.node.name}"
    yield f"memory://{root.lstrip('/')}", fs
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """12 embedded faces as PNG files of two people's folders (so the folders name them)."""
    from skimage.data import lfw_subset

    d = tmp_path_factory.mktemp("url-photos")
    for i, img in enumerate(lfw_subset()[:12]):
        (d / f"P{i % 2}").mkdir(exist_ok=True)
        Image.fromarray((img * 255).astype(np.uint8)).save(d / f"P{i % 2}" / f"P{i % 2}_{i:04d}.png")
    return d


def upload(folder, store) -> list[str]:
    """Copy the image files of `folder` into the memory store; their URLs in the order of the local files."""
    url, fs = store
    files = sorted(p for p in folder.rglob("*.png"))
    for p in files:
        fs.pipe(f"{url}/{p.relative_to(folder).as_posix()}".replace("memory://", "/"), p.read_bytes())
    return [f"{url}/{p.relative_to(folder).as_posix()}" for p in files]


def test_images_in_an_object_store_encode_to_the_codes_of_the_same_files_on_disk(people, net, store):
    urls = upload(people, store)
    on_disk, _, _ = encode_sources(net, [str(people)])
    by_folder, _, _ = encode_sources(net, [store[0] + "/"])  # a folder URL, listed through fsspec
    assert by_folder.codes.dtype == np.float32 and by_folder.codes.shape == (12, net.code_size)
    assert np.array_equal(by_folder.codes, on_disk.codes)
    assert by_folder.names == on_disk.names and set(by_folder.names) == {"P0", "P1"}
    assert by_folder.sources == urls  # the URLs are the paths
    store[1].pipe(store[0].replace("memory://", "/") + "/list.txt", ("\n".join(["# a list", *urls[::-1], ""])).encode())
    by_list, _, _ = encode_sources(net, [store[0] + "/list.txt"])  # a list of URLs, itself at a URL
    assert np.array_equal(by_list.codes, on_disk.codes[::-1]) and by_list.sources == urls[::-1]


def test_a_missing_url_is_named_alone_and_listed_as_failed_in_a_shard_job(people, store, tmp_path):
    urls = upload(people, store)
    missing = store[0] + "/P0/nobody_0001.png"
    with pytest.raises(DataError, match=f"{missing}: no such file; check the URL"):
        encode_sources(PixelEncoder(size=8, channels=1), [missing])
    listing = tmp_path / "photos.txt"
    listing.write_text("\n".join([urls[0], missing, urls[1]]))
    manifest = encode_to_shards(PixelEncoder(size=8, channels=1), [str(listing)], tmp_path / "codes", shard_size=2)
    assert list(manifest["failed"]) == [missing] and "no such file" in manifest["failed"][missing]
    assert load_codes(tmp_path / "codes").sources == urls[:2]


def test_a_local_list_file_takes_paths_relative_to_itself(people, tmp_path):
    files = []
    for p in sorted(people.rglob("*.png"))[:3]:
        (tmp_path / "faces").mkdir(exist_ok=True)
        files.append(tmp_path / "faces" / p.name)
        files[-1].write_bytes(p.read_bytes())
    listing = tmp_path / "faces" / "some.txt"
    listing.write_text("\n".join(p.name for p in files) + "\n\n")
    got, _, _ = encode_sources(PixelEncoder(size=8, channels=1), [str(listing)])
    want, _, _ = encode_sources(PixelEncoder(size=8, channels=1), [str(p) for p in files])
    assert np.array_equal(got.codes, want.codes) and got.sources == want.sources and len(got) == 3
    with pytest.raises(DataError, match="no such list file"):
        encode_sources(PixelEncoder(size=8, channels=1), [str(tmp_path / "none.txt")])


def test_without_fsspec_a_url_says_which_pip_command_adds_it(people, store, run_cli, tmp_path, monkeypatch):
    url = upload(people, store)[0]
    monkeypatch.setitem(sys.modules, "fsspec", None)  # as if fsspec were not installed
    with pytest.raises(DataError, match=rf"{url}: reading URLs needs fsspec.*pip install fsspec"):
        encode_sources(PixelEncoder(size=8, channels=1), [url])
    code, out, err = run_cli("encode", url, "--model", "pixels:8:grey", "--out", tmp_path / "c.npy")
    assert code == 2 and "pip install fsspec" in err and out == "" and not (tmp_path / "c.npy").exists()


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_a_protocol_whose_package_is_missing_names_it(people):
    from facespace.data.images import load_images

    with pytest.raises(DataError, match="s3://bucket/a.png: .*pip install fsspec s3fs"):
        load_images(["s3://bucket/a.png"], size=8)


@needs_dask
@pytest.mark.slow  # worker processes import torch and load the model: seconds on an idle machine
def test_file_urls_on_a_2_worker_cluster_give_the_codes_of_the_local_paths(photos, net, single, tmp_path):
    urls = [p.as_uri() for p in sorted(photos.glob("*.png"))]
    missing = (photos / "gone.png").as_uri()
    listing = tmp_path / "photos.txt"
    listing.write_text("\n".join([*urls, missing]))  # the missing one last: the first shards are the single run's
    out = tmp_path / "codes"
    manifest = encode_on_cluster(net, [str(listing)], out, cluster="local:2", shard_size=SHARD, threads=1)
    assert manifest["n_shards"] == N // SHARD + 1 and list(manifest["failed"]) == [missing]
    assert "no such file" in manifest["failed"][missing]
    got, ref = load_codes(out), load_codes(single)
    assert np.array_equal(got.codes, ref.codes) and got.names == ref.names
    assert got.sources == urls and ref.sources == [str(p) for p in sorted(photos.glob("*.png"))]
    assert json.loads((out / "manifest.json").read_text()) == manifest
