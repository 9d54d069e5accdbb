"""Real transfer for detection: Faster R-CNN over ImageNet SqueezeNet 1.1 features vs the
same detector over a randomly initialised SqueezeNet, on PennFudan (last 50 images as val).

Runs recipes/detect_pennfudan_squeezenet.yaml twice in one process: as shipped (the ImageNet
``features.*`` weights from the data root, ``model.weights``), and with ``model.weights``
removed (a randomly initialised backbone, trained with everything else). Prints box AP50 and mAP@[.5:.95] on the 50
validation images at the best epoch, the epoch, and the wall-clock time of each run.

    python benchmarks/detection_transfer.py --data ../shared/data

Target: the pretrained run reaches AP50 >= 0.7 in at most 15 minutes on a
two-core CPU; the random-backbone run scores clearly lower.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "detect_pennfudan_squeezenet.yaml"


def run(data: Path, out: str, name: str, extra: list[str]) -> dict:
    from visiontl import api
    from visiontl.config.loader import load_recipe
    from visiontl.plugin_manager import build_plugin_manager

    recipe = load_recipe(RECIPE, ["train.progress=true", f"output.dir={out}", f"output.name={name}", "output.checkpoints=false", *extra])
    started = time.perf_counter()
    outcome = api.run(recipe, plugins=build_plugin_manager(), data_root=data)
    seconds = time.perf_counter() - started
    best = outcome.summary["best"]
    return {
        "name": name,
        "weights": outcome.summary["weights"]["source"],
        "map50": best["map50"],
        "map": best["map"],
        "epoch": best["epoch"],
        "epochs": outcome.summary["epochs_run"],
        "seconds": seconds,
        "history": [(r["epoch"], r["map50"], r["seconds"]) for r in outcome.result.history],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (train.threads); default: torch's own")
    parser.add_argument("--only", choices=("pretrained", "random"), default=None, help="run one side only")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe override a.b=value")
    args = parser.parse_args()
    extra = list(args.overrides) + ([f"train.threads={args.threads}"] if args.threads else [])
    sides = {
        "pretrained": [],
        "random": ["model.weights=null"],
    }
    results = []
    with tempfile.TemporaryDirectory() as out:
        for name, overrides in sides.items():
            if args.only and name != args.only:
                continue
            results.append(run(args.data, out, name, [*extra, *overrides]))
    print(f"\ntorch threads {args.threads or torch.get_num_threads()}, torch {torch.__version__}, {os.cpu_count()} CPUs; recipe {RECIPE.relative_to(ROOT)}")
    print("PennFudan: 120 train / 50 val images (the last 50 by file name)")
    for r in results:
        curve = ", ".join(f"{ap:.3f}" for _, ap, _ in r["history"])
        print(
            f"{r['name']:<10}: AP50 {r['map50']:.3f}, mAP {r['map']:.3f} (best epoch {r['epoch']} of {r['epochs']}), "
            f"{r['seconds'] / 60:.1f} min; AP50 per epoch: {curve}; weights: {r['weights']}"
        )


if __name__ == "__main__":
    main()
