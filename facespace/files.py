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
