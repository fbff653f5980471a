"""Image files at URLs, read through fsspec: `is_url`, `read_url`, `list_url`.

A URL (`scheme://...`: `file://`, `memory://`, `s3://`, `gs://`, `http(s)://`, any protocol fsspec
knows) is read with `fsspec.open(url, "rb")` by `facespace.data.images.open_image`, the one place image
files are opened, so every verb that reads image files takes URLs (which URLs a user's sources name:
`facespace.data.sources`). fsspec is not a core dependency (it comes with the `[cluster]` extra) and is
imported only when a URL is seen; a missing fsspec, or a protocol whose package is missing (s3fs,
gcsfs, ...), raises `DataError` naming the URL and the pip command; a URL that names no file raises the
`DataError` a missing path does.

Example:
    >>> is_url("s3://bucket/faces/ann_0001.jpg"), is_url("faces/ann_0001.jpg"), is_url("C://faces")
    (True, False, False)
"""

from __future__ import annotations

import re
from typing import Any

from facespace.errors import DataError

# a scheme of two letters or more: "C://..." is a Windows drive, not a URL
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
# the package each common protocol needs beside fsspec (what the error's pip command names)
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
            "abfss": "adlfs", "adl": "adlfs", "http": "aiohttp requests", "https": "aiohttp requests",
            "hf": "huggingface_hub", "sftp": "paramiko", "ssh": "paramiko", "webdav": "webdav4"}
INSTALL = "pip install fsspec (or pip install 'facespace[cluster]')"


def is_url(source: Any) -> bool:
    """True for a `scheme://...` string (a path object or bytes never is)."""
    return isinstance(source, str) and _URL.match(source) is not None


def _protocol(url: str) -> str:
    return url.partition("://")[0].lower()


def fsspec_module(url: str):
    """The fsspec module, or `DataError` naming `url` and the pip command when it is not installed."""
    try:
        import fsspec
    except ImportError:
        raise DataError(f"{url}: reading URLs needs fsspec, which is not installed; {INSTALL}, or give local "
                        "paths (a shared folder)") from None
    return fsspec


def _url_error(url: str, e: Exception) -> DataError:
    """A clear `DataError` for what fsspec raised on `url`."""
    proto = _protocol(url)
    if isinstance(e, ImportError):  # the protocol's own package is missing
        pkg = PACKAGES.get(proto)
        fix = f"pip install fsspec {pkg}" if pkg else f"install the package fsspec names for {proto}://"
        return DataError(f"{url}: reading {proto}:// URLs needs a package that is not installed ({e}); {fix}")
    if isinstance(e, ValueError) and "protocol" in str(e).lower():
        return DataError(f"{url}: fsspec knows no protocol {proto!r} ({e}); give a local path or a URL such as "
                         "s3://, gs://, https:// or file://")
    if isinstance(e, FileNotFoundError):
        return DataError(f"{url}: no such file; check the URL")
    if isinstance(e, IsADirectoryError):
        return DataError(f"{url}: is a folder, not an image file")
    if isinstance(e, PermissionError):
        return DataError(f"{url}: permission denied ({e}); check the credentials of the store")
    return DataError(f"{url}: cannot read the URL ({type(e).__name__}: {e})")


def read_url(url: str) -> bytes:
    """The bytes of the file at `url`, through `fsspec.open(url, "rb")`.

    Raises:
        DataError: fsspec or the protocol's package missing, no such file, or the read failed.
    """
    fsspec = fsspec_module(url)
    try:
        with fsspec.open(url, "rb") as f:
            return f.read()
    except (ImportError, OSError, ValueError) as e:
        raise _url_error(url, e) from None




def list_url(url: str) -> list[str] | None:
    """The files under the folder at `url`, recursively and sorted, as paths relative to it; None when
    `url` names no folder (a file, or nothing).

    Raises:
        DataError: fsspec or the protocol's package missing, or the store refused the listing.
    """
    fsspec = fsspec_module(url)
    try:
        fs, root = fsspec.core.url_to_fs(url)
        if not fs.isdir(root):
            return None
        found = sorted(fs.find(root))
    except (ImportError, OSError, ValueError) as e:
        raise _url_error(url, e) from None
    root = root.rstrip("/")
    return [p[len(root):].lstrip("/") for p in found if p.startswith(root + "/")]
