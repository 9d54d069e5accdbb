"""The generic latency harness behind ``visiontl_benchmark``.

Method (see docs/benchmarks.md): warm up, synchronise the device before every clock read,
repeat until both a minimum count and a minimum time are reached, report the median (p50)
and p90 rather than the mean, and record the conditions (threads, batch, precision, device,
versions) with every result.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from visiontl.contracts import BenchmarkRequest, BenchmarkResult
from visiontl.train.precision import autocast, torch_threads


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_macs(model: nn.Module, example: Any) -> int | None:
    """Multiply-accumulates of one forward pass (FLOPs / 2, counted by torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(example)
        return int(counter.get_total_flops() // 2)
    except Exception:  # noqa: BLE001 - some ops have no flop formula; MACs are then unknown
        return None


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("torchvision", "timm", "visiontl"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def time_callable(fn: Callable[[], Any], device: torch.device, request: BenchmarkRequest) -> list[float]:
    """Seconds per call of ``fn``: ``warmup`` untimed calls, then timed ones."""
    for _ in range(request.warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < request.min_repeats or time.perf_counter() - start < request.min_seconds:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 10_000:
            break
    return times


def benchmark_module(model: nn.Module, model_id: str, request: BenchmarkRequest, make_input: Callable[[torch.device], Any] | None = None) -> BenchmarkResult:
    """Measure ``model`` in eval mode on a synthetic batch."""
    device = torch.device(request.device)
    h, w = request.input_size
    with torch_threads(request.threads):
        threads = torch.get_num_threads()
        model = model.eval().to(device)
        example = make_input(device) if make_input else torch.rand(request.batch_size, 3, h, w, device=device)
        macs = count_macs(model, example) if request.batch_size == 1 else None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        def forward() -> Any:
            with torch.inference_mode(), autocast(request.precision, device):
                return model(example)

        times = time_callable(forward, device, request)
    ms = sorted(t * 1000.0 for t in times)
    p50 = statistics.median(ms)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 1024**2
        peak_kind = "cuda max allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_kind = "process max RSS"
    return BenchmarkResult(
        model_id=model_id,
        latency_ms_p50=p50,
        latency_ms_p90=p90,
        throughput_ips=request.batch_size / (p50 / 1000.0),
        params=sum(p.numel() for p in model.parameters()),
        batch_size=request.batch_size,
        input_size=(h, w),
        precision=request.precision,
        device=str(device),
        threads=threads,
        repeats=len(times),
        macs=macs,
        peak_memory_mb=peak,
        versions=versions(),
        extras={"peak_memory_kind": peak_kind, "cpu": platform.processor() or platform.machine()},
    )
