"""Calibrating the latency model on this machine: ``visiontl select --calibrate``.

A handful of reference models (different shapes of compute: dense, depthwise, attention,
many small layers) are built with random weights and timed here at batch 1 through the
benchmark hook; the latency model is fitted on them and cached per machine, and the
``local`` target uses it. The published-device fit serves as the prior shape: the local fit
only rescales it when there are too few measurements to fit every coefficient.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visiontl.cards import ModelCard
from visiontl.selection.latency import LatencyModel, fit

#: Reference models timed by ``--calibrate`` (all in the timm catalogue).
REFERENCE_MODELS = (
    "timm:mobilenetv3_small_100",
    "timm:lcnet_100",
    "timm:mobilenetv2_100",
    "timm:efficientnet_b0",
    "timm:regnety_008",
    "timm:resnet18",
    "timm:vit_tiny_patch16_224",
    "timm:resnet50",
    "timm:densenet121",
)


def machine_id() -> str:
    """A stable id for this machine's CPU and thread count."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    key = f"{platform.node()}|{cpu}|{os.cpu_count()}"
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def cache_path() -> Path:
    root = Path(os.environ.get("VISIONTL_CACHE_DIR", Path.home() / ".cache" / "visiontl"))
    return root / "calibration" / f"{machine_id()}.json"


def measure_cards(cards: Sequence[ModelCard], threads: int | None = None, min_seconds: float = 1.0) -> dict[str, float]:
    """Batch-1 p50 latency (ms) of each card's model, built with random weights, here."""
    from visiontl.contracts import BenchmarkRequest
    from visiontl.plugin_manager import get_plugins
    from visiontl.trained import build_model_for_card

    plugins = get_plugins()
    out: dict[str, float] = {}
    for card in cards:
        built = build_model_for_card(card, plugins)
        request = BenchmarkRequest(input_size=tuple(card.input_size), batch_size=1, threads=threads, warmup=3, min_repeats=10, min_seconds=min_seconds)
        result = plugins.hook.visiontl_benchmark(model=built.model, built=built, request=request)
        out[card.id] = result.latency_ms_p50
    return out


def calibrate(cards: Sequence[ModelCard], threads: int | None = None) -> LatencyModel:
    """Time the reference models here, fit, cache and return the local latency model."""
    import torch

    chosen = [c for c in cards if c.id in REFERENCE_MODELS and c.profile is not None]
    measured = measure_cards(chosen, threads)
    threads_used = threads or torch.get_num_threads()
    model = fit([(c.profile, measured[c.id]) for c in chosen], "local", f"calibrated here on {len(chosen)} reference models ({threads_used} threads)")
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"coefficients": model.coefficients, "basis": model.basis, "fit_error": model.fit_error, "measured_ms": measured, "threads": threads_used}, indent=1), encoding="utf-8")
    return model


def load_calibration() -> LatencyModel | None:
    """This machine's cached calibration, if ``--calibrate`` was run."""
    path = cache_path()
    if not path.is_file():
        return None
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return LatencyModel("local", raw["coefficients"], raw["basis"], fit_error=raw.get("fit_error"), samples=len(raw.get("measured_ms", {})))
