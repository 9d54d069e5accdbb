"""The generic latency harness behind ``visiontl_benchmark``.

Method (see docs/benchmarks.md):

* warm up (``request.warmup`` untimed calls), so one-off costs (allocator growth, kernel
  selection, runtime graph compilation) stay out of the figures;
* synchronise the device before every clock read (pytorch#21286: CUDA calls return before
  the work is done; on the CPU the synchronisation is a no-op);
* repeat until both ``min_repeats`` calls and ``min_seconds`` have passed, and then until the
  median is stable: the medians of the first and second half of the samples agree within
  :data:`STABLE_WITHIN` (or :data:`MAX_SECONDS_FACTOR` times ``min_seconds`` have passed,
  which is recorded as ``stable: false``);
* report the median (p50) and p90 of the per-call latencies rather than the mean;
* record the conditions (threads, batch, precision, device, versions) with every result, and
  peak memory: CUDA max allocated on a GPU, otherwise the largest resident set size (RSS) of
  the process seen during the timed calls.

Anything callable on one input can be timed: :func:`benchmark_module` takes any ``nn.Module``,
including exported models wrapped as modules (:mod:`visiontl.export.runtime`).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from visiontl.contracts import BenchmarkRequest, BenchmarkResult
from visiontl.train.precision import autocast, torch_threads

#: The median counts as stable when the medians of both halves of the samples agree this well.
STABLE_WITHIN = 0.05
#: Time-out of the stability rule, in multiples of ``min_seconds`` (at least 2 s).
MAX_SECONDS_FACTOR = 5.0
#: Hard cap on timed calls (tiny models on fast hardware).
MAX_REPEATS = 10_000


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
    """Versions of Python and the libraries that shape a measurement."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("torchvision", "timm", "visiontl", "onnxruntime", "openvino", "ultralytics"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def current_rss_mb() -> float | None:
    """The process's resident set size now, in MiB (Linux ``/proc/self/statm``), else ``None``."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            resident_pages = int(fh.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1024**2
    except (OSError, ValueError, IndexError):
        return None


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ascending values, linearly interpolated (numpy's default)."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class Timing:
    """Per-call seconds of a timed loop and what the loop observed.

    Attributes:
        times: seconds per call, in call order.
        stable: whether the median settled (see the module docstring).
        peak_rss_mb: the largest RSS seen after any call (CPU), or ``None``.
        wall_s: seconds the timed loop took.
    """

    times: list[float]
    stable: bool
    peak_rss_mb: float | None
    wall_s: float


def _halves_agree(times: list[float]) -> bool:
    half = len(times) // 2
    if half < 3:
        return False
    first, second = statistics.median(times[:half]), statistics.median(times[half:])
    return abs(first - second) <= STABLE_WITHIN * max(first, second)


def timed_loop(fn: Callable[[], Any], device: torch.device, request: BenchmarkRequest, sample_rss: bool = True) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then time calls until the stopping rule holds."""
    for _ in range(request.warmup):
        fn()
    _sync(device)
    times: list[float] = []
    peak = current_rss_mb() if sample_rss else None
    limit = max(request.min_seconds * MAX_SECONDS_FACTOR, 2.0)
    start = time.perf_counter()
    stable = False
    while len(times) < MAX_REPEATS:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if sample_rss:  # outside the clock: reading /proc costs microseconds
            rss = current_rss_mb()
            if rss is not None and (peak is None or rss > peak):
                peak = rss
        elapsed = time.perf_counter() - start
        if len(times) >= request.min_repeats and elapsed >= request.min_seconds:
            stable = _halves_agree(times)
            if stable or elapsed >= limit:
                break
    return Timing(times, stable, peak, time.perf_counter() - start)


def time_callable(fn: Callable[[], Any], device: torch.device, request: BenchmarkRequest) -> list[float]:
    """Seconds per call of ``fn``: ``warmup`` untimed calls, then timed ones (see :func:`timed_loop`)."""
    return timed_loop(fn, device, request, sample_rss=False).times


def benchmark_module(
    model: nn.Module,
    model_id: str,
    request: BenchmarkRequest,
    make_input: Callable[[torch.device], Any] | None = None,
) -> BenchmarkResult:
    """Measure ``model`` in eval mode on a synthetic batch of ``request.batch_size`` images.

    Args:
        model: the module (a PyTorch model, or an export wrapped as a module).
        model_id: the id recorded in the result.
        request: input size, batch, device, threads, precision (autocast), repeats.
        make_input: builds the input on a device (default: uniform noise ``[B, 3, H, W]``).

    Returns:
        A :class:`~visiontl.contracts.BenchmarkResult`; ``extras`` holds the mean, min, max,
        the stability verdict, the kind of peak memory, the CPU and the wall time.

    Example:
        >>> from torchvision.models import squeezenet1_1  # doctest: +SKIP
        >>> r = benchmark_module(squeezenet1_1(), "squeezenet1_1", BenchmarkRequest(threads=2))  # doctest: +SKIP
        >>> r.latency_ms_p50, r.latency_ms_p90  # doctest: +SKIP
    """
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

        timing = timed_loop(forward, device, request, sample_rss=device.type != "cuda")
    ms = sorted(t * 1000.0 for t in timing.times)
    p50 = statistics.median(ms)
    if device.type == "cuda":
        peak: float | None = torch.cuda.max_memory_allocated(device) / 1024**2
        peak_kind = "cuda max allocated"
    else:
        peak = timing.peak_rss_mb
        peak_kind = "process RSS (largest seen while timing)"
        if peak is None:  # no /proc: the process's lifetime maximum is the best available
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            peak_kind = "process max RSS (lifetime)"
    return BenchmarkResult(
        model_id=model_id,
        latency_ms_p50=p50,
        latency_ms_p90=percentile(ms, 90.0),
        throughput_ips=request.batch_size / (p50 / 1000.0),
        params=sum(p.numel() for p in model.parameters()),
        batch_size=request.batch_size,
        input_size=(h, w),
        precision=request.precision,
        device=str(device),
        threads=threads,
        repeats=len(ms),
        macs=macs,
        peak_memory_mb=peak,
        versions=versions(),
        extras={
            "latency_ms_mean": statistics.fmean(ms),
            "latency_ms_min": ms[0],
            "latency_ms_max": ms[-1],
            "stable": timing.stable,
            "warmup": request.warmup,
            "timed_seconds": timing.wall_s,
            "peak_memory_kind": peak_kind,
            "cpu": cpu_name(),
            **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}),
        },
    )
