"""Image folders: find the images under a folder, and say whose face each one is.

One rule serves the official LFW layout (`<root>/<Name>/<Name>_NNNN.jpg`), an LFWcrop-style flat
folder (`faces/<Name>_NNNN.pgm`), and any folder of the user's own photos or products:

- a folder whose images are all named `<Name>_NNNN` takes each identity from the file name, when
  the names agree with the folder (LFW) or when there are several (LFWcrop);
- otherwise an image in a sub-folder belongs to its top-level sub-folder (`root/alice/2020/x.jpg`
  is alice);
- an image directly in the root with no such name is its own identity (its file stem), or, when no
  image in the set has an identity at all, the set has no names (`names=None`).
"""

from __future__ import annotations

import errno
import os
import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from facespace.data.images import IMAGE_EXTENSIONS, is_image_file
from facespace.errors import DataError, DataWarning

_LFW_NAME = re.compile(r"^(.+)_(\d{4})$")


class FileEntry(NamedTuple):
    """One image file found in a folder or archive."""

    relpath: str  # POSIX path relative to the root
    size: int  # bytes
    mtime_ns: int


def scan_folder(root: str | os.PathLike, *, strict: bool = False,
                skipped: list[tuple[str, str]] | None = None) -> list[FileEntry]:
    """All image files under `root`, recursively, sorted by relative path; hidden entries skipped.

    Images are found by extension, or by content for names without a known extension
    (`images.is_image_file`). A dangling symlink or a symlink loop is skipped with one `DataWarning`
    (listed in `skipped` as `(relative path, reason)` when a list is given), or stops the scan with
    `strict`.

    Raises:
        DataError: `root` is missing, not a folder, or holds no images; with `strict`, a broken link.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such folder; check the path")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    found: list[FileEntry] = []
    broken: list[tuple[str, str]] = []
    top = os.fspath(root)
    root_stat = os.stat(top)
    stack = [("", top, root_stat.st_dev)]
    seen = {(root_stat.st_dev, root_stat.st_ino)}  # folders already walked: a symlink loop is walked once
    while stack:
        rel, folder, dev = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except PermissionError:
            raise DataError(f"{folder}: permission denied; make the folder readable") from None
        for e in entries:
            if e.name.startswith("."):
                continue
            r = f"{rel}/{e.name}" if rel else e.name
            try:
                is_dir = e.is_dir(follow_symlinks=True)
            except OSError:  # a loop of links: its stat below says so
                is_dir = False
            if is_dir:
                # readdir gives a real folder's inode for free; only a symlink needs a stat
                st = e.stat(follow_symlinks=True) if e.is_symlink() else None
                key = (st.st_dev, st.st_ino) if st is not None else (dev, e.inode())
                if key not in seen:
                    seen.add(key)
                    stack.append((r, e.path, key[0]))
            else:
                try:
                    st = e.stat(follow_symlinks=True)
                except OSError as err:  # a dangling link (ENOENT) or a loop of links (ELOOP)
                    reason = "symlink loop" if getattr(err, "errno", None) == errno.ELOOP else "dangling symlink"
                    if strict:
                        raise DataError(f"{e.path}: {reason}; remove or fix it (or drop --strict to skip it)") from None
                    broken.append((r, reason))
                    continue
                if is_image_file(e.path):
                    found.append(FileEntry(r, st.st_size, st.st_mtime_ns))
    if broken:
        warnings.warn(f"{root}: skipped {len(broken)} broken link(s), e.g. {broken[0][0]} ({broken[0][1]})",
                      DataWarning, stacklevel=2)
        if skipped is not None:
            skipped.extend(broken)
    if not found:
        kinds = ", ".join(x.lstrip(".") for x in IMAGE_EXTENSIONS)
        raise DataError(f"{root}: no images found (looked recursively for {kinds}); "
                        f"give a folder of images, an LFW .tgz, or 'embedded'")
    found.sort(key=lambda f: f.relpath)
    return found


def identities(relpaths: Sequence[str]) -> np.ndarray | None:
    """The identity of each image from its relative POSIX path (rules in the module docstring).

    Returns:
        `(n,)` str array, or None when no image has an identity.
    """
    by_dir: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(relpaths):
        by_dir[r.rpartition("/")[0]].append(i)
    names: list[str | None] = [None] * len(relpaths)
    for d, idx in by_dir.items():
        stems = [Path(relpaths[i]).stem for i in idx]
        parsed = [_LFW_NAME.match(s) for s in stems]
        dirname = d.rpartition("/")[2]
        if all(parsed):
            people = {m.group(1) for m in parsed}
            if people == {dirname} or len(people) >= 2:
                for i, m in zip(idx, parsed):
                    names[i] = m.group(1)
                continue
        if d:
            top = d.partition("/")[0]
            for i in idx:
                names[i] = top
    if all(n is None for n in names):
        return None
    return np.array([n if n is not None else Path(r).stem for n, r in zip(names, relpaths)])
