"""Device and numeric precision: where the model runs and in which autocast."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from visiontl.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU; asking for absent CUDA is an error."""
    if "," in name:
        # One process trains on one device; several GPUs means several processes (torchrun).
        raise ConfigError(
            f"train.device '{name}' lists several devices; a visiontl process trains on one.",
            fix="launch one process per GPU: torchrun --nproc_per_node=N -m visiontl run RECIPE (train.device: auto or cuda)",
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device is '{name}' but no CUDA device is available.", fix="use train.device: cpu (or auto)")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("train.device is 'mps' but MPS is not available.", fix="use train.device: cpu (or auto)")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    """fp16 autocast with loss scaling is a CUDA feature; bf16 works on CPU and CUDA."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision fp16 needs a CUDA device.", fix="use bf16 on CPU (train.precision: bf16) or fp32")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast context for a precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 on CUDA; bf16 needs none."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Set torch's intra-op threads inside the block (``None`` leaves them)."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
