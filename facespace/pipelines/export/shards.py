"""Codes of a large photo set as a folder of shards: one `.npy` (+ sidecar) per shard and a manifest.

`encode_to_shards` splits the files into shards of `shard_size` and writes each shard when it is
done (atomically), then its record beside it (`shard-KKKKK.done.json`, also atomically: the shard's
manifest entry and its unreadable files), so each shard costs the same whatever the job's size. The
manifest (`manifest.json`) is written when the first shard is (the job, its model and settings) and
whole at the end of each run, rebuilt from the records. Run the same job again after a kill and only
the shards without a record are encoded; the result is the same, bit for bit, as an uninterrupted
run. Files that cannot be read are listed in the manifest with the reason (never skipped silently);
the rest of their shard is encoded. The sources may be local folders and files, `.txt` lists of
paths or URLs, and URLs read through fsspec (`facespace.data.sources`): a URL stays the file's path.
`facespace.pipelines.export.read.load_codes_dir` (and so `load_codes(FOLDER)` and every `--codes
FOLDER`) reads the folder as one set, records included when a killed run left its manifest behind.

Example:
    >>> encode_to_shards(model, ["photos/"], "codes/", shard_size=1000)     # doctest: +SKIP
    >>> load_codes("codes/").codes.shape                                    # doctest: +SKIP
    (13233, 32)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facespace.checkpoint import weights_hash
from facespace.data.sources import image_files
from facespace.errors import DataError
from facespace.files import write_text_atomic
from facespace.pipelines.encoding import encode_sources
from facespace.pipelines.export.formats import (
    MANIFEST, ExportedCodes, ExportError, crc, export_model_record, record_path,
)
from facespace.pipelines.export.read import merge_records, shard_records
from facespace.pipelines.export.write import save_codes

SHARD_SIZE = 1000  # files per shard


def _job_key(model: Any, files: list[str], settings: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps([weights_hash(model), settings, files]).encode())
    return h.hexdigest()[:16]


@dataclass
class ShardJob:
    """A shard folder's job: its files cut into shards, its manifest, and what is still to do.

    `open_shard_job` makes one; whoever encodes a shard (this process, a worker pool or a cluster,
    `facespace.pipelines.export.cluster`) hands its rows to `write_shard`, which writes the shard file
    and then its record, both atomically, so any order of shards gives the same folder; `finish`
    writes the manifest whole.

    Attributes:
        out: the shard folder.
        manifest: the manifest with every shard done so far (sorted by `finish`).
        chunks: every shard as `(k, files, names)`, in order.
        detect: whether faces were detected (shards then keep their boxes).
        record: the model record each shard file carries.
    """

    out: Path
    manifest: dict[str, Any]
    chunks: list[tuple[int, list[str], list[str | None]]]
    detect: bool
    record: dict[str, Any] | None = None
    _order: dict[str, int] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return int(self.manifest["files"])

    def is_done(self, k: int) -> bool:
        entry = self.manifest["shards"].get(f"{k:05d}")
        return entry is not None and (self.out / entry["file"]).is_file()

    def pending(self) -> list[tuple[int, list[str], list[str | None]]]:
        """The shards not yet written, in order."""
        return [c for c in self.chunks if not self.is_done(c[0])]

    def files_done(self) -> int:
        return sum(len(part) for k, part, _ in self.chunks if self.is_done(k))

    def write_shard(self, k: int, rows: ExportedCodes, failed: dict[str, str]) -> None:
        """Write shard `k`'s rows, then its record (its entry and unreadable files): O(1) in the job's size.

        The first shard of a job also writes the manifest as it stands (job, model, settings), so
        the folder names its job from then on.
        """
        _, part, who = self.chunks[k]
        tag = f"{k:05d}"
        by_path = dict(zip(part, who))
        name = f"shard-{tag}.npy"
        self.out.mkdir(parents=True, exist_ok=True)
        if not (self.out / MANIFEST).is_file():
            write_text_atomic(self.out / MANIFEST, json.dumps(self.manifest, indent=1))
        save_codes(rows.codes, self.out / name, sources=rows.sources, names=[by_path.get(s) for s in rows.sources],
                   model=self.record, boxes=rows.boxes if self.detect else None, faces=rows.faces)
        entry = {"file": name, "rows": len(rows), "crc": crc(rows.codes), "files": len(part)}
        record = {"job": self.manifest["job"], "shard": tag, **entry, "failed": failed}
        write_text_atomic(record_path(self.out / name), json.dumps(record, indent=1))  # the shard is on disk first
        self.manifest["shards"][tag] = entry
        self.manifest["failed"].update(failed)

    def finish(self) -> dict[str, Any]:
        """Write the manifest whole (shards in order, failed files in file order) where any shard was
        written and it changed; return it. The folder's records are kept: a re-run reads them."""
        self.manifest["shards"] = dict(sorted(self.manifest["shards"].items()))
        self.manifest["failed"] = dict(sorted(self.manifest["failed"].items(),
                                              key=lambda kv: self._order.get(kv[0], -1)))
        path = self.out / MANIFEST
        text = json.dumps(self.manifest, indent=1)
        if path.is_file() and path.read_text() != text:
            write_text_atomic(path, text)
        return self.manifest


def open_shard_job(model: Any, sources: list[str], out_dir: str | os.PathLike, *, shard_size: int = SHARD_SIZE,
                   detect: bool = False, detector: str = "auto", crop: Any = "recorded") -> ShardJob:
    """Cut the files of `sources` into shards and open (or create) the folder's manifest.

    Args:
        model: the model (its weights and record name the job).
        sources: as `encode_to_shards`.
        out_dir: the shard folder (one job per folder; made when the first shard is written).
        shard_size, detect, detector, crop: as `encode_to_shards`.

    Returns:
        The job; `job.pending()` lists the shards a re-run still has to encode.

    Raises:
        ExportError: `shard_size` below 1, or the folder holds another job's shards.
        DataError: a source that does not exist, or no image files at all.
    """
    if shard_size < 1:
        raise ExportError(f"shard_size must be at least 1; got {shard_size}")
    files, names = image_files([str(s) for s in sources])
    if not files:
        raise DataError(f"no image files in {', '.join(map(str, sources))}")
    out = Path(out_dir)
    settings = {"shard_size": shard_size, "detect": detect, "detector": detector, "crop": str(crop)}
    key = _job_key(model, files, settings)
    manifest_path = out / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
    else:  # the folder is made by the first shard written: a job that fails at once leaves nothing
        manifest = {"format": "facespace-codes-shards", "version": 1, "job": key, "model": export_model_record(model),
                    "settings": settings, "files": len(files), "shards": {}, "failed": {}}
    chunks = [(k, files[i : i + shard_size], names[i : i + shard_size]) for k, i in
              enumerate(range(0, len(files), shard_size))]
    finished = len(manifest["shards"]) >= len(chunks)  # then the records add nothing: not read
    records = shard_records(out) if out.is_dir() and not finished else []
    if manifest.get("job") != key or any(r.get("job") != key for r in records):
        raise ExportError(f"{out} holds the shards of another job (another model, other files or settings); "
                          "give a new folder, or delete this one to start again")
    manifest = merge_records(manifest, records)  # the shards a killed run wrote after its manifest
    manifest["n_shards"] = len(chunks)
    return ShardJob(out, manifest, chunks, detect, export_model_record(model), {f: i for i, f in enumerate(files)})


def encode_to_shards(
    model: Any,
    sources: list[str],
    out_dir: str | os.PathLike,
    *,
    shard_size: int = SHARD_SIZE,
    detect: bool = False,
    detector: str = "auto",
    crop: Any = "recorded",
    batch_size: int = 256,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Encode image folders/files into a shard folder; resume a killed job where it stopped.

    Args:
        model: the model.
        sources: image folders (recursive), files, `.txt` lists of paths or URLs, or URLs of images or
            folders (`facespace.data.sources.image_files`).
        out_dir: the shard folder (created; one job per folder).
        shard_size: files per shard.
        detect, detector, crop, batch_size, workers: as `facespace.pipelines.encoding.encode_sources`.
        progress: called with (files done, files in all) after each shard.

    Returns:
        The manifest: model record, settings, shards (file, rows, crc), failed files with reasons.

    Raises:
        ExportError: the folder holds another job's shards (another model, files or settings).
    """
    job = open_shard_job(model, sources, out_dir, shard_size=shard_size, detect=detect, detector=detector, crop=crop)
    done = job.files_done()
    try:
        for k, part, _ in job.pending():
            rows, failed = encode_part(model, part, detect=detect, detector=detector, crop=crop,
                                       batch_size=batch_size, workers=workers)
            job.write_shard(k, rows, failed)
            done += len(part)
            if progress is not None:
                progress(done, job.files)
    finally:  # the manifest whole, also after an error (a kill leaves the records, which a re-run reads)
        job.finish()
    return job.manifest


def encode_part(model: Any, part: list[str], **options: Any) -> tuple[ExportedCodes, dict[str, str]]:
    """One shard's codes and its unreadable files: `(rows, {path: reason})`; a file that cannot be read
    is left out of the rows and reported with its reason (options: as `encode_sources`)."""
    try:
        rows, _, _ = encode_sources(model, part, **options)
        return rows, {}
    except DataError:
        pass
    good, failed = [], {}
    for p in part:  # find the unreadable files one by one
        try:
            encode_sources(model, [p], **{**options, "workers": 1})
            good.append(p)
        except DataError as e:
            failed[p] = str(e)
    if not good:
        return ExportedCodes(np.zeros((0, int(model.code_size)), np.float32), [], [], export_model_record(model)), failed
    rows, _, _ = encode_sources(model, good, **options)
    return rows, failed
