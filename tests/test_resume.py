"""`resume=True` continues an interrupted run exactly where its last finished epoch left it.

This file is also the script the kill test runs: `python tests/test_resume.py OUT_DIR` trains a
tiny denoising model slowly (a sleeping collate_fn) so that the test can kill it mid-way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_loop import low_rank_images, make_model, same, weights

EPOCHS = 6


def config(**changes):
    from facespace.training.loop import TrainConfig

    base = dict(epochs=EPOCHS, batch_size=32, lr=1e-2, schedule="onecycle", seed=5, threads=1)
    return TrainConfig(**{**base, **changes})


def train(out_dir, *, resume=False, sleep=0.0, **changes):
    from facespace.training.loop import fit

    def slow_collate(items):
        time.sleep(sleep)
        return torch.stack(items)

    x = low_rank_images(224)  # 192 train images: 6 steps per epoch
    model = make_model(noise=0.05)  # noise in the loss: the RNG state must resume too
    result = fit(model, x[:192], x[192:], config(**changes), out_dir=out_dir, resume=resume, progress=False,
                 collate_fn=slow_collate if sleep else None)
    return model, result


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    model, result = train(out)
    return weights(model), result, out


def test_killed_run_resumes_and_finishes_identically(tmp_path, uninterrupted):
    from facespace.models.registry import load_model
    from facespace.training.runs import load_resume, read_metrics

    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, __file__, str(out)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "resume.pt").exists():  # the first epoch's checkpoint is on disk
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the training subprocess wrote no checkpoint in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished

    done = load_resume(out)["epoch"]
    assert 1 <= done < EPOCHS
    assert load_model(out / "last.safetensors").checkpoint_info["extra"]["epoch"] == done

    model, result = train(out, resume=True)
    want_weights, want, _ = uninterrupted
    assert result.epochs_run == EPOCHS
    assert [r["epoch"] for r in result.history] == list(range(1, EPOCHS + 1))
    assert [int(r["epoch"]) for r in read_metrics(out / "metrics.csv")] == list(range(1, EPOCHS + 1))
    assert same(weights(model), want_weights)  # optimizer, schedule and RNG states all resumed
    assert result.best_val_loss == want.best_val_loss
    assert [r["val_loss"] for r in result.history] == [r["val_loss"] for r in want.history]


def test_resuming_a_finished_run_returns_its_result(uninterrupted, tmp_path):
    import shutil

    _, want, out = uninterrupted
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    model, result = train(copy, resume=True)
    assert result.epochs_run == EPOCHS and result.history == want.history
    assert (copy / "last.safetensors").read_bytes() == (out / "last.safetensors").read_bytes()


def test_resume_refuses_changed_settings(uninterrupted):
    from facespace.errors import FacespaceError

    _, _, out = uninterrupted
    with pytest.raises(FacespaceError, match="different lr.*start a new run"):
        train(out, resume=True, lr=0.5)
    with pytest.raises(FacespaceError, match="epochs \\(the learning-rate schedule spans them\\)"):
        train(out, resume=True, epochs=EPOCHS + 2)


def test_resume_refuses_another_model(uninterrupted):
    from facespace.errors import FacespaceError
    from facespace.training.loop import fit

    _, _, out = uninterrupted
    with pytest.raises(FacespaceError, match="holds the state of another model.*same model"):
        fit(make_model(code_size=7), low_rank_images(64), None, config(), out_dir=out, resume=True, progress=False)


def test_resume_can_add_epochs_without_a_schedule(tmp_path):
    _, first = train(tmp_path, epochs=2, schedule="none")
    model, more = train(tmp_path, resume=True, epochs=4, schedule="none")
    assert more.epochs_run == 4 and more.history[:2] == first.history
    longer, straight = train(tmp_path / "straight", epochs=4, schedule="none")
    assert same(weights(model), weights(longer))


if __name__ == "__main__":
    train(sys.argv[1], sleep=0.15)
