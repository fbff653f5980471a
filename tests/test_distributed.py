"""The same `fit` under `torchrun --nproc_per_node 2` (DistributedDataParallel, gloo on CPU).

This file is also the script torchrun runs: `python -m torch.distributed.run --standalone
--nproc_per_node 2 tests/test_distributed.py OUT_DIR` trains a tiny model and has each rank write
the hash of its final weights to `OUT_DIR/rank<r>.txt`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from test_loop import low_rank_images, make_model

EPOCHS, BATCH = 3, 16


def weights_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def train_tiny(out_dir, batch_size: int):
    from facespace.training.loop import TrainConfig, fit

    x = low_rank_images(160)  # 128 train: 4 steps of 2 x 16 per epoch, no padding
    model = make_model(noise=0.0)
    config = TrainConfig(epochs=EPOCHS, batch_size=batch_size, lr=1e-2, seed=3, threads=1)
    result = fit(model, x[:128], x[128:], config, out_dir=out_dir, progress=False)
    return model, result


def test_two_processes_agree_and_match_one_process(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [(out / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert ranks[0] == ranks[1]  # DDP kept both replicas identical

    from facespace.models.registry import load_model

    saved = load_model(out / "last.safetensors")
    assert weights_hash(saved) == ranks[0]  # rank 0 wrote the weights both ranks hold
    assert saved.checkpoint_info["step"] == EPOCHS * 4
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("rank")) == [
        "best.safetensors", "config.json", "last.safetensors", "loss.png", "metrics.csv", "resume.pt"]

    # two ranks of 16 average their gradients: the same steps as one process with batches of 32
    single, result = train_tiny(tmp_path / "single", batch_size=2 * BATCH)
    for k, v in single.state_dict().items():
        assert torch.allclose(v, saved.state_dict()[k], atol=1e-5), k
    assert result.epochs_run == EPOCHS


if __name__ == "__main__":
    import torch.distributed as tdist

    trained, _ = train_tiny(sys.argv[1], batch_size=BATCH)
    rank = int(os.environ.get("RANK", "0"))
    Path(sys.argv[1], f"rank{rank}.txt").write_text(weights_hash(trained))
    assert not tdist.is_initialized()  # fit left the process group it joined
    # The rank's answer is on disk and the group is gone. Leave without running C++ static destructors:
    # under load, torch's teardown of a joinable thread at interpreter exit has aborted a rank
    # ("terminate called without an active exception") after its work was done, failing the run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
