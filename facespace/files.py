"""Atomic file writes: a file is either the old one or the whole new one, never half-written."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it onto `path`.

    Example:
        >>> with atomic_write("out.bin") as f:  # doctest: +SKIP
        ...     f.write(b"data")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def label_filename(label: str, *, prefix: str = "", suffix: str = "") -> str:
    """A file name for a free-text label: its slug cut to 64 characters and a hash of the whole label,
    so labels that share a long beginning never name one file.

    Example:
        >>> label_filename("PCA-32 (a.safetensors)", prefix="roc_", suffix=".png")
        'roc_pca-32-a-safetensors-86ca6f69.png'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:64].rstrip("-")
    return f"{prefix}{slug}-{hashlib.sha256(label.encode()).hexdigest()[:8]}{suffix}"


# what facespace writes, told apart by their first bytes (`file_kind`)
_FORMATS = {"facespace-checkpoint": "model", "facespace-index": "index"}


def file_kind(path: str | os.PathLike) -> str | None:
    """What a file facespace could have written is: "model", "index", "gallery" (SQLite), or None
    for anything else (another file, or one too damaged to tell)."""
    import json
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if head.startswith(b"SQLite format 3\0"):
                return "gallery"
            if len(head) < 8:
                return None
            (n,) = struct.unpack("<Q", head[:8])
            if not 2 <= n <= 100_000_000:
                return None
            f.seek(8)
            meta = json.loads(f.read(n)).get("__metadata__", {})
            return _FORMATS.get(json.loads(meta.get("facespace", "{}")).get("format"))
    except (OSError, ValueError, AttributeError):
        return None


def check_output(path: str | os.PathLike, kind: str) -> Path:
    """Refuse to write a `kind` file ("model", "index") where it would destroy something else.

    Writing over a file of the same kind is allowed (a model saved again, an index rewritten).

    Raises:
        FacespaceError: `path` is a folder, or an existing file of another kind (a model, an index,
            a gallery, or a file facespace did not write), naming it and saying what to do.
    """
    from facespace.errors import FacespaceError

    path = Path(path)
    if path.is_dir():
        raise FacespaceError(f"{path} is a folder; give a file name for the {kind}, e.g. {path / ('faces.' + kind)}")
    if path.exists():
        found = file_kind(path)
        if found != kind:
            what = f"a {found} file" if found else "a file facespace did not write"
            raise FacespaceError(f"{path} is {what}; writing the {kind} there would destroy it: choose another name "
                                 "(nothing was written)")
    return path


@contextmanager
def locked(path: str | os.PathLike, *, timeout: float = 60.0) -> Iterator[None]:
    """Hold an exclusive lock on `path` (a `.lock` file beside it) while a writer reads, changes and
    rewrites it, so two writers take turns and neither's change is lost.

    Raises:
        FacespaceError: another process held the lock for `timeout` seconds (named, with what to do).
    """
    import fcntl
    import time

    from facespace.errors import FacespaceError

    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    waited = f" for over {timeout:.0f} s" if timeout else ""
                    raise FacespaceError(f"{path} is being changed by another process (it holds {lock.name}{waited}); "
                                         "try again when it has finished") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
