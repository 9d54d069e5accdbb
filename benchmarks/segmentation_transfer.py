"""Real transfer for segmentation: the ImageNet SqueezeNet backbone against a random one.

Runs recipes/segment_pennfudan_squeezenet.yaml (a DeepLabV3 head over SqueezeNet 1.1,
PennFudan with the last 50 images as validation) twice in one process: with the ImageNet
features file (model.weights) and from a randomly initialised backbone (model.weights=null),
and prints person IoU (final epoch and best epoch), mIoU and wall time of each. Acceptance:
the pretrained run reaches person IoU >= 0.60 within 10 minutes, and the random backbone
scores clearly lower (at least 0.10 below). Exit status 1 when a criterion fails.

    python benchmarks/segmentation_transfer.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "segment_pennfudan_squeezenet.yaml"


def run(data: Path, out: str, name: str, extra: list[str]) -> dict:
    from visiontl import api
    from visiontl.config.loader import load_recipe
    from visiontl.plugin_manager import build_plugin_manager

    recipe = load_recipe(RECIPE, ["train.progress=false", f"output.dir={out}", f"output.name={name}", "output.plots=false", *extra])
    started = time.perf_counter()
    outcome = api.run(recipe, plugins=build_plugin_manager(), data_root=data)
    seconds = time.perf_counter() - started
    history = outcome.result.history
    best = max(history, key=lambda r: r["iou_person"])
    return {
        "name": name,
        "weights": outcome.summary["weights"]["source"],
        "loaded": outcome.summary["weights"]["loaded"],
        "final_person_iou": history[-1]["iou_person"],
        "final_miou": history[-1]["miou"],
        "best_person_iou": best["iou_person"],
        "best_epoch": best["epoch"],
        "epochs": len(history),
        "seconds": seconds,
        "audits_ok": all(a["ok"] for a in outcome.summary["audits"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=None, help="override train.threads of the recipe")
    args = parser.parse_args()
    extra = [f"train.threads={args.threads}"] if args.threads else []
    with tempfile.TemporaryDirectory() as out:
        pretrained = run(args.data, out, "imagenet", extra)
        scratch = run(args.data, out, "random", [*extra, "model.weights=null"])
    import torch

    print(f"recipe {RECIPE.relative_to(ROOT)}; PennFudan 120 train / 50 val images; torch {torch.__version__}; threads {args.threads or 'recipe'}")
    print(f"{'backbone':<10} {'person IoU final':>16} {'best (epoch)':>14} {'mIoU final':>10} {'time':>8}  weights")
    for r in (pretrained, scratch):
        print(
            f"{r['name']:<10} {r['final_person_iou']:>16.3f} {r['best_person_iou']:>9.3f} ({r['best_epoch']:>2}) "
            f"{r['final_miou']:>10.3f} {r['seconds']:>7.0f}s  {r['weights']} ({r['loaded']} tensors)"
        )
    checks = {
        "pretrained person IoU >= 0.60 (final epoch)": pretrained["final_person_iou"] >= 0.60,
        "pretrained run within 10 minutes": pretrained["seconds"] <= 600,
        "random backbone at least 0.10 lower (final epoch)": scratch["final_person_iou"] <= pretrained["final_person_iou"] - 0.10,
        "freeze audits passed": pretrained["audits_ok"] and scratch["audits_ok"],
    }
    for what, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
