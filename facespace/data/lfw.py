"""LFW as it comes: the official `.tgz` read member by member, and scikit-learn's `lfw_home` cache.

The folder layout itself (`<root>/<Name>/<Name>_NNNN.jpg`) needs nothing special: `folders.py`
reads it like any image folder.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from facespace.data.images import is_image_name
from facespace.errors import DataError

ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def is_archive(path: str | os.PathLike) -> bool:
    """True when the file name looks like a tar archive (`.tgz`, `.tar.gz`, `.tar`, ...)."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def iter_archive(path: str | os.PathLike, on_progress: Callable[[int], None] | None = None
                 ) -> Iterator[tuple[str, bytes]]:
    """Stream the image members of a tar archive, in archive order, without unpacking to disk.

    Args:
        path: the archive (gzip, bzip2, xz or plain tar).
        on_progress: called now and then with the number of archive bytes read so far.

    Yields:
        `(member path, encoded image bytes)` for each regular file with an image extension.

    Raises:
        DataError: naming the archive, when it is missing, not a tar archive, or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such archive; check the path")
    try:
        with open(path, "rb") as f, _decompressed(f) as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    if member.isfile() and is_image_name(member.name) and not Path(member.name).name.startswith("."):
                        fobj = tar.extractfile(member)
                        if fobj is None:
                            continue
                        yield member.name, fobj.read()
                        if on_progress is not None:
                            on_progress(f.tell())
            # tarfile stops quietly when data ends between two members; reading the compressed stream to
            # its end checks its own end marker and checksum, so a truncated download is caught
            while stream.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as e:
        raise DataError(f"{path}: cannot read the archive ({type(e).__name__}: {e}); it may be truncated "
                        f"or not a tar archive: download it again, or unpack it and give the folder") from None


def _decompressed(f: BinaryIO) -> BinaryIO:
    """A reader of the tar data in `f`: gzip, bzip2 and xz by their magic bytes, else plain tar."""
    magic = f.read(6)
    f.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")
    if magic[:3] == b"BZh":
        return bz2.BZ2File(f, "rb")
    if magic == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(f, "rb")
    return contextlib.nullcontext(f)  # type: ignore[return-value]


def resolve_sklearn_home(path: str | os.PathLike) -> Path | None:
    """The image folder inside a scikit-learn `fetch_lfw_people` cache, or None if `path` is not one.

    `fetch_lfw_people` leaves `<data_home>/lfw_home/lfw_funneled/<Name>/<Name>_NNNN.jpg` (or `lfw/`
    when `funneled=False`), beside its own joblib cache and the pairs lists. `path` may be the
    `lfw_home` folder or the `data_home` that holds it (by default `~/scikit_learn_data`).

    Raises:
        DataError: an `lfw_home` folder without either image folder.
    """
    path = Path(path)
    if path.name != "lfw_home":
        if not (path / "lfw_home").is_dir():
            return None
        path = path / "lfw_home"
    for sub in ("lfw_funneled", "lfw"):
        if (path / sub).is_dir():
            return path / sub
    raise DataError(f"{path}: a scikit-learn lfw_home cache without its lfw_funneled/ or lfw/ image "
                    f"folder; run sklearn.datasets.fetch_lfw_people() once, or give an LFW folder")
