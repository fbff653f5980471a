"""Process-group plumbing, so one `fit` runs alone or under `torchrun --nproc_per_node N`, and
walkers over opaque (nested list / tuple / dict) batches: move, check, count.

`torchrun` sets `RANK`, `LOCAL_RANK` and `WORLD_SIZE`; when `WORLD_SIZE` > 1 `setup` joins the
process group (nccl on GPUs, gloo on CPU). Alone, every helper here is a no-op, so the loop
calls them unconditionally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class Dist:
    """Where this process stands.

    Attributes:
        rank: this process's index in `0 .. world_size - 1`.
        local_rank: its index on this machine (picks the GPU).
        world_size: how many processes train together.
        device: where its tensors live (`cuda:<local_rank>` when there are GPUs, else cpu).
        owns_group: True when `setup` started the process group (so `teardown` ends it).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and progress."""
        return self.rank == 0


def setup() -> Dist:
    """Join the process group torchrun describes in the environment (if any) and pick a device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if world_size <= 1:
        return Dist(device=device)
    owns = False
    if not tdist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        tdist.init_process_group(backend="nccl" if cuda else "gloo")
        owns = True
    return Dist(tdist.get_rank(), local_rank, tdist.get_world_size(), device, owns)


def teardown(dist: Dist) -> None:
    """Leave the process group if `setup` joined it."""
    if dist.owns_group and tdist.is_initialized():
        # every rank reaches here before any leaves: a rank that destroys the group while another
        # still has gloo work in flight can abort the other ("terminate called without an active
        # exception"), seen under load in the two-process test
        tdist.barrier()
        tdist.destroy_process_group()


def sum_all(values: list[float], dist: Dist) -> list[float]:
    """Element-wise sum of `values` over all processes (float64, identical on every rank)."""
    if dist.world_size == 1:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=dist.device)
    tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return t.tolist()


def any_all(flags: list[bool], dist: Dist) -> list[bool]:
    """Element-wise logical OR of `flags` over all processes, so every rank takes the same branch."""
    return [v > 0 for v in sum_all([float(f) for f in flags], dist)]


def weighted_means(sums: dict[str, float], dist: Dist) -> dict[str, float]:
    """Means over all processes of per-example sums; `sums["_n"]` counts the examples (kept as is)."""
    keys = sorted(sums)  # the same order on every rank
    totals = dict(zip(keys, sum_all([sums[k] for k in keys], dist)))
    n = max(totals["_n"], 1)
    return {**{k: v / n for k, v in totals.items() if k != "_n"}, "_n": totals["_n"]}


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor in a (nested list / tuple / dict) batch; 4-d ones go channels-last when asked."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if channels_last and batch.ndim == 4 else batch
    if isinstance(batch, (list, tuple)):
        moved = [to_device(b, device, channels_last) for b in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    return batch


def all_finite(batch: Any) -> bool:
    """False when a floating-point tensor anywhere in a (nested) batch holds NaN or inf."""
    if isinstance(batch, torch.Tensor):
        return not batch.is_floating_point() or bool(torch.isfinite(batch).all())
    if isinstance(batch, (list, tuple)):
        return all(all_finite(b) for b in batch)
    if isinstance(batch, dict):
        return all(all_finite(b) for b in batch.values())
    return True


def batch_len(batch: Any) -> int:
    """Examples in a batch: the first dimension of its first tensor (1 when it has none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for b in items:
        if isinstance(b, (torch.Tensor, list, tuple, dict)):
            return batch_len(b)
    return 1


def gather(obj: Any, dist: Dist) -> list[Any]:
    """Every process's `obj`, in rank order (picklable objects)."""
    if dist.world_size == 1:
        return [obj]
    out: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(out, obj)
    return out


def wrap(module: torch.nn.Module, dist: Dist) -> torch.nn.Module:
    """`module` wrapped in DistributedDataParallel when training with several processes."""
    if dist.world_size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [dist.device.index] if dist.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)
