"""CUDA checks of the core paths, for a machine with a GPU (run once per change to them).

* the shared loop on CUDA: fp32 + channels_last, bf16 autocast, fp16 autocast with loss
  scaling, across a freeze -> unfreeze boundary, with the freeze audit;
* feature caching on CUDA gives the uncached result;
* the benchmark harness (device synchronisation) against torch.utils.benchmark on the GPU.

    python benchmarks/gpu_check.py --out results.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def run_recipe(root: Path, out: str, **sections: dict) -> dict:
    from visiontl import api
    from visiontl.config.loader import validate_recipe
    from visiontl.plugin_manager import build_plugin_manager

    recipe = {
        "data": {"root": str(root), "image_size": 64},
        "model": {"id": "timm:resnet10t"},
        "strategy": {"name": "progressive", "phase_epochs": [1, 1, 2]},
        "optimizer": {"lr": [0.0005, 0.003]},
        "augmentation": {"preset": "light"},
        "train": {"epochs": 4, "batch_size": 32, "device": "cuda", "progress": False},
        "output": {"dir": out, "plots": False},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    started = time.perf_counter()
    outcome = api.run(validate_recipe(recipe), plugins=build_plugin_manager())
    s = outcome.summary
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "device": s.get("device"),
        "precision": s.get("precision"),
        "best_accuracy": s["best"]["accuracy"],
        "train_loss": [round(r["train_loss"], 4) for r in outcome.result.history],
        "audits_ok": [a["ok"] for a in s.get("audits", [])],
        "feature_cache": s.get("feature_cache"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()

    import torch
    import torch.utils.benchmark as tb

    from visiontl.contracts import BenchmarkRequest
    from visiontl.data.synthetic import make_shapes
    from visiontl.plugin_manager import build_plugin_manager

    results: dict = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0)}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_shapes(Path(tmp) / "shapes", per_class_train=120, per_class_val=40)
        runs = {}
        for name, train in (("fp32_channels_last", {"precision": "fp32", "channels_last": True}), ("bf16", {"precision": "bf16"}), ("fp16", {"precision": "fp16"})):
            try:
                runs[name] = run_recipe(root, tmp, train=train, output={"name": name})
            except Exception as exc:  # noqa: BLE001 - record and go on to the next check
                runs[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(name, runs[name], flush=True)
        results["loop"] = runs
        cache = {}
        for mode in ("on", "off"):
            cache[mode] = run_recipe(root, tmp, strategy={"name": "feature_extraction", "phase_epochs": None}, augmentation={"preset": "none"},
                                     train={"epochs": 3, "cache_features": mode}, output={"name": f"cache_{mode}"})
        results["cache"] = cache
        print("cache", cache, flush=True)

    plugins = build_plugin_manager()
    bench = {}
    from visiontl.api import build_model_for_card
    from visiontl_timm.catalogue import cards

    chosen = [c for c in cards() if c.id in ("timm:resnet50", "timm:efficientnet_b0", "timm:mobilenetv3_large_100", "timm:vit_small_patch16_224", "timm:convnext_tiny")]
    for card in chosen:
        built = build_model_for_card(card, plugins)
        for precision in ("fp32", "fp16"):
            request = BenchmarkRequest(input_size=tuple(card.input_size), batch_size=1, device="cuda", precision=precision, warmup=10, min_repeats=50, min_seconds=1.0)
            ours = plugins.hook.visiontl_benchmark(model=built.model, built=built, request=request)
            model = built.model.eval().cuda()
            x = torch.rand(1, 3, *card.input_size, device="cuda")
            dtype = torch.float16 if precision == "fp16" else None

            def fwd(model=model, x=x, dtype=dtype) -> None:  # bound now: the timer calls it later
                with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                    model(x)

            ref = tb.Timer(stmt="fwd()", globals={"fwd": fwd}).blocked_autorange(min_run_time=1.0)
            bench[f"{card.id}/{precision}"] = {"visiontl_p50_ms": round(ours.latency_ms_p50, 3), "visiontl_p90_ms": round(ours.latency_ms_p90, 3),
                                               "torch_benchmark_median_ms": round(ref.median * 1000, 3), "peak_mb": round(ours.peak_memory_mb or 0, 1)}
            print(card.id, precision, bench[f"{card.id}/{precision}"], flush=True)
    results["benchmark"] = bench
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
