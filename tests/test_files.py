"""Atomic writes: whole file or the old one, with the usual permissions."""

from __future__ import annotations

import os

import pytest

from facespace.files import atomic_write, write_text_atomic


def test_written_file_has_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_text_atomic(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert p.read_text() == "hello"
    assert (p.stat().st_mode & 0o777) == 0o644


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = write_text_atomic(tmp_path / "b.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_write(p, "w") as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["b.txt"]
