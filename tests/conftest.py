"""Shared fixtures. Expensive ones are built once per session or module."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACESPACE_SHARED", ROOT.parent / "shared" / "data"))
LFW = SHARED / "lfw" / "lfw-deepfunneled"
SKETCHRNN = SHARED / "sketchrnn"

needs_lfw = pytest.mark.skipif(not LFW.is_dir(), reason=f"needs the LFW data at {LFW} (../shared/data)")
needs_sketchrnn = pytest.mark.skipif(
    not SKETCHRNN.is_dir(), reason=f"needs the Sketch-RNN data at {SKETCHRNN} (../shared/data)"
)


@pytest.fixture(autouse=True, scope="session")
def _quiet_threads(tmp_path_factory):
    """Two pytest workers share two cores: one torch thread each; cache under the test tmp dir."""
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("FACESPACE_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from facespace.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
