"""Codes of a photo set as a shard folder: resumable, read back as one set, damage refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facespace.errors import FacespaceError
from facespace.models.pixels import PixelEncoder
from facespace.pipelines.encoding import encode_sources
from facespace.pipelines.export.read import load_codes
from facespace.pipelines.export.shards import encode_to_shards


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from skimage.data import lfw_subset

    d = tmp_path_factory.mktemp("shard-photos")
    for i, img in enumerate(lfw_subset()[:22]):
        person = d / f"P{i % 4}"
        person.mkdir(exist_ok=True)
        Image.fromarray((img * 255).astype(np.uint8)).save(person / f"P{i % 4}_{i:04d}.png")
    return d


MODEL = PixelEncoder(size=8, channels=1)


def test_a_shard_folder_reads_as_the_single_file_would(photos, tmp_path):
    manifest = encode_to_shards(MODEL, [str(photos)], tmp_path / "codes", shard_size=5)
    assert manifest["n_shards"] == 5 and not manifest["failed"]
    whole, _, _ = encode_sources(MODEL, [str(photos)])
    got = load_codes(tmp_path / "codes")
    assert np.array_equal(got.codes, whole.codes)
    assert got.sources == whole.sources and got.names == whole.names
    assert set(got.names) == {"P0", "P1", "P2", "P3"}


@pytest.mark.parametrize("layout", ["records", "manifest only"])
def test_a_killed_job_resumes_with_only_the_missing_shards_and_the_same_codes(photos, tmp_path, layout):
    out = tmp_path / "codes"
    encode_to_shards(MODEL, [str(photos)], out, shard_size=5)
    full, whole = load_codes(out).codes, (out / "manifest.json").read_text()
    # as after a kill between shard 2 being written and its record, shards 3-4 never written: the shards
    # done are known by their records (the manifest is as the first shard wrote it), or, in a folder of an
    # older facespace that kept no records, by the manifest
    manifest = json.loads(whole)
    for tag in ("00002", "00003", "00004"):
        del manifest["shards"][tag]
        (out / f"shard-{tag}.done.json").unlink()
    if layout == "records":
        manifest["shards"] = {}
    else:
        for tag in ("00000", "00001"):
            (out / f"shard-{tag}.done.json").unlink()
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "shard-00003.npy").unlink()
    with pytest.raises(FacespaceError, match="3 of 5 shards are not done.*re-run the same encode command"):
        load_codes(out)
    kept = (out / "shard-00000.npy").stat().st_mtime_ns
    done = []
    encode_to_shards(MODEL, [str(photos)], out, shard_size=5, progress=lambda d, n: done.append(d))
    assert (out / "shard-00000.npy").stat().st_mtime_ns == kept  # done shards are not encoded again
    assert len(done) == 3
    assert np.array_equal(load_codes(out).codes, full)
    if layout == "records":
        assert (out / "manifest.json").read_text() == whole


def test_each_shard_writes_its_own_record_and_the_manifest_is_written_once_per_run(photos, tmp_path, monkeypatch):
    import facespace.pipelines.export.shards as shards

    writes = []
    real = shards.write_text_atomic
    monkeypatch.setattr(shards, "write_text_atomic", lambda path, text: (writes.append(path.name), real(path, text)))
    out = tmp_path / "codes"
    encode_to_shards(MODEL, [str(photos)], out, shard_size=5)
    records = [f"shard-{k:05d}.done.json" for k in range(5)]
    assert writes == ["manifest.json", *records, "manifest.json"]  # per shard O(1): its record, never the manifest
    kept, codes = json.loads((out / "manifest.json").read_text()), load_codes(out).codes
    # a driver killed after its last shard, before its manifest: the reader and a re-run use the records
    (out / "manifest.json").write_text(json.dumps({**kept, "shards": {}}))
    assert np.array_equal(load_codes(out).codes, codes) and len(codes) == 22
    writes.clear()
    assert encode_to_shards(MODEL, [str(photos)], out, shard_size=5) == kept and writes == ["manifest.json"]


def test_damage_other_jobs_and_bad_files_are_named(photos, tmp_path):
    out = tmp_path / "codes"
    encode_to_shards(MODEL, [str(photos)], out, shard_size=5)
    with pytest.raises(FacespaceError, match="another job"):
        encode_to_shards(PixelEncoder(size=4, channels=1), [str(photos)], out, shard_size=5)
    data = (out / "shard-00001.npy").read_bytes()
    (out / "shard-00001.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(FacespaceError, match="shard-00001.npy"):
        load_codes(out)
    bad = tmp_path / "mixed"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a picture")
    Image.open(next(photos.rglob("*.png"))).save(bad / "good.png")
    manifest = encode_to_shards(MODEL, [str(bad)], tmp_path / "mixed-codes", shard_size=10)
    assert list(manifest["failed"]) == [str((bad / "broken.png").resolve())]
    assert len(load_codes(tmp_path / "mixed-codes")) == 1


def test_the_cli_writes_shards_for_a_folder_out(photos, tmp_path, run_cli):
    code, out, _ = run_cli("encode", photos, "--model", "pixels:8:grey", "--out", tmp_path / "codes", "--shard-size", "10")
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["format"] == "shards" and summary["shards"] == 3 and summary["count"] == 22
    code, out, _ = run_cli("index", "build", "--codes", tmp_path / "codes", "--out", tmp_path / "i.index")
    assert code == 0
