"""Distributed data parallel training for the shared loop.

Launched with ``torchrun --nproc_per_node=N -m visiontl run RECIPE`` (one node) or with
``--nnodes``/``--rdzv-endpoint`` across machines: torchrun sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; the loop joins the process group (gloo on CPU, NCCL on CUDA), splits each
global batch of ``train.batch_size`` images across the ranks, and rebuilds the
DistributedDataParallel wrapper at every phase boundary, because the set of parameters that
need gradients changes there. Only rank 0 writes the run directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from visiontl.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistContext:
    """The context torchrun describes in the environment (single process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistContext(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(ctx: DistContext, device: torch.device) -> None:
    """Join the process group (idempotent)."""
    import torch.distributed as dist

    if not ctx.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)


def device_for(ctx: DistContext, device: torch.device) -> torch.device:
    """One GPU per process: ``cuda`` becomes ``cuda:<local rank>``."""
    if ctx.enabled and device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
        return torch.device("cuda", ctx.local_rank)
    return device


def check_batch(ctx: DistContext, batch_size: int) -> int:
    """The per-rank batch size; the global batch must split evenly."""
    if batch_size % ctx.world:
        raise ConfigError(
            f"train.batch_size {batch_size} does not split evenly across {ctx.world} processes.",
            fix=f"use a multiple of {ctx.world}",
        )
    return batch_size // ctx.world


def epoch_batches(n: int, batch_size: int, seed: int | None, ctx: DistContext) -> Iterator[list[int]]:
    """This rank's share of each global batch of an epoch.

    The global batches are exactly the single-process ones (a seeded permutation cut into
    ``batch_size`` chunks, or the dataset order when ``seed`` is None); rank ``r`` takes items
    ``r, r + world, ...`` of each chunk, so the ranks together see what one process would.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist() if seed is not None else list(range(n))
    for start in range(0, n, batch_size):
        chunk = order[start:start + batch_size]
        yield chunk[ctx.rank::ctx.world]


def wrap(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """A DDP wrapper over the parameters that currently need gradients (identity when single)."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def mean(value: float, count: int, ctx: DistContext) -> tuple[float, int]:
    """Average a per-rank mean weighted by item counts across ranks."""
    if not ctx.enabled:
        return value, count
    import torch.distributed as dist

    t = torch.tensor([value * count, float(count)], dtype=torch.float64)
    dist.all_reduce(t)
    total = int(t[1].item())
    return (float(t[0].item()) / max(1, total)), total


def broadcast(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's value of ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def sync_buffers(model: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank, e.g. before evaluating."""
    if not ctx.enabled:
        return
    import torch.distributed as dist

    for buf in model.buffers():
        dist.broadcast(buf.data, src=0)
