"""What a user points at, as image files: folders, files, list files and URLs.

- A local folder gives its image files, recursively and sorted (`facespace.data.folders.scan_folder`),
  with the identity its sub-folders or file names say (`facespace.data.folders.identities`).
- A URL (`facespace.data.urls`) with an image suffix is one image; any other URL is a folder (on an
  object store, a prefix) whose image files are listed recursively and sorted through fsspec, with
  identities as a local folder's.
- A `.txt` file, local or at a URL, lists images, one path or URL a line (`read_list`): blank lines and
  lines starting with `#` are skipped; a relative path is relative to the list's own folder. Nothing
  is checked before it is read, so a missing entry is reported with the files that cannot be read.

Images keep their URLs as their paths; a local path is made absolute (`absolute`), or with
`as_given` (the face-taking verbs: `facespace.data.inputs.expand_images`) kept as given (`image_path`).

Example:
    >>> image_files(["photos/", "more.txt", "s3://bucket/faces/"])  # doctest: +SKIP
    (['/home/me/photos/ann/ann_0001.jpg', ..., 's3://bucket/faces/bob/bob_0001.jpg'], ['ann', ..., 'bob'])
"""

from __future__ import annotations

import os
from pathlib import Path

from facespace.data.folders import identities, scan_folder
from facespace.data.images import is_image_name
from facespace.data.urls import is_url, list_url, read_url
from facespace.errors import DataError

LIST_SUFFIXES = (".txt",)  # a source with this suffix lists images, one a line


def is_list_file(source: str | os.PathLike) -> bool:
    """True for a source that lists images: a path or URL ending in `.txt`."""
    return str(source).lower().endswith(LIST_SUFFIXES)


def absolute(source: str | os.PathLike) -> str:
    """How codes name an image: a URL as given, a local path made absolute."""
    return source if is_url(source) else str(Path(source).resolve())


def image_path(source: str | os.PathLike) -> str:
    """One image as a command names it: a URL as given, a local path as `Path` writes it ("./a.png" is
    "a.png"), never resolved."""
    return source if is_url(source) else str(Path(source))


def url_images(url: str) -> tuple[list[str], list[str] | None]:
    """A URL source as image URLs: `([url], None)` for one image (a URL with an image suffix, or one
    that names no folder), else the folder's image files (recursive, sorted) and their relative paths.

    Raises:
        DataError: fsspec or the protocol's package missing, or a folder that holds no image file.
    """
    if is_image_name(url):
        return [url], None
    found = list_url(url)
    if found is None:
        return [url], None
    rel = [r for r in found if is_image_name(r)]
    if not rel:
        raise DataError(f"{url}: no image files (.jpg, .png, .pgm, ...) in this folder; check the URL")
    base = url.rstrip("/")
    return [f"{base}/{r}" for r in rel], rel


def read_list(source: str | os.PathLike) -> list[str]:
    """The images a list file names, one path or URL a line, in order (see the module docstring).

    Raises:
        DataError: the list is missing or unreadable, or names no image.
    """
    where = str(source)
    if is_url(where):
        text = read_url(where).decode("utf-8", "surrogateescape")
        base = where.rpartition("/")[0]
    else:
        try:
            text = Path(where).read_bytes().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            raise DataError(f"{where}: no such list file; give a text file of image paths or URLs, one a line") from None
        except OSError as e:
            raise DataError(f"{where}: cannot read the list file ({e})") from None
        base = str(Path(where).resolve().parent)
    items = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if is_url(line) or os.path.isabs(line):
            items.append(line)
        else:
            items.append(f"{base}/{line}" if is_url(base) else os.path.join(base, line))
    if not items:
        raise DataError(f"{where}: the list names no image; write one image path or URL a line")
    return items


def image_files(sources: list[str], *, as_given: bool = False) -> tuple[list[str], list[str | None]]:
    """Every image file the sources name, in order, and the identity of each where its folder says it.

    Args:
        sources: local folders (recursive), image files, `.txt` lists of images, or URLs of images
            or folders.
        as_given: keep local paths as given (a folder's files under the folder as given, a list's
            entries as `read_list` gives them) instead of making them absolute.

    Returns:
        `(files, names)`: absolute paths (with `as_given`, local paths as given) or URLs, and one
        identity (or None) each.

    Raises:
        DataError: a local source that does not exist, an empty list, a URL folder without images,
            or URLs without fsspec (or the protocol's package).
    """
    local = image_path if as_given else absolute
    files: list[str] = []
    names: list[str | None] = []
    for src in map(str, sources):
        path = Path(src)
        if is_list_file(src):
            listed = [local(p) for p in read_list(src)]
            files += listed
            names += [None] * len(listed)
        elif is_url(src):
            urls, rel = url_images(src)
            who = identities(rel) if rel is not None else None
            files += urls
            names += list(who) if who is not None else [None] * len(urls)
        elif path.is_dir():
            rel = [e.relpath for e in scan_folder(path)]
            who = identities(rel)
            files += [local(path / r) for r in rel]
            names += list(who) if who is not None else [None] * len(rel)
        elif path.is_file():
            files.append(local(path))
            names.append(None)
        else:
            raise DataError(f"{src}: no such file or folder; give image folders, image files, a .txt list of "
                            "them, or URLs")
    return files, names
