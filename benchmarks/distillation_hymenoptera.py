"""Distillation on hymenoptera: a small student from scratch, with and without a teacher.

The teacher is recipes/hymenoptera_progressive.yaml (SqueezeNet 1.1 with ImageNet weights,
progressive fine-tuning). The student is a timm ResNet-10t from random weights, trained
the same way twice: on the labels alone, and with the teacher's softened probabilities
(distill.weight, temperature 4). One command measures both.

    python benchmarks/distillation_hymenoptera.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--teacher", type=Path, default=None, help="An existing teacher run (default: train one).")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--weight", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch

    from visiontl import api
    from visiontl.config.loader import load_recipe, validate_recipe
    from visiontl.plugin_manager import build_plugin_manager

    if args.threads:
        torch.set_num_threads(args.threads)
    plugins = build_plugin_manager()
    with tempfile.TemporaryDirectory() as out:
        teacher = args.teacher
        if teacher is None:
            started = time.perf_counter()
            recipe = load_recipe(ROOT / "recipes" / "hymenoptera_progressive.yaml", ["train.progress=false", f"output.dir={out}", "output.name=teacher"])
            outcome = api.run(recipe, plugins=plugins, data_root=args.data)
            teacher = outcome.run_dir
            print(f"teacher  torchvision:squeezenet1_1 (ImageNet weights, progressive): best val accuracy {outcome.summary['best']['accuracy']:.3f} ({time.perf_counter() - started:.0f} s)")
        student = {
            "data": {"root": "hymenoptera_data", "image_size": 128},
            "model": {"id": "timm:resnet10t"},
            "strategy": {"name": "full"},
            "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 0.05},
            "scheduler": {"name": "cosine", "warmup_epochs": 1},
            "augmentation": {"preset": "standard"},
            "train": {"epochs": args.epochs, "batch_size": 32, "seed": 0, "progress": False},
            "output": {"dir": out, "plots": False, "checkpoints": False},
        }
        for name, extra in (("labels only", {}), (f"with teacher (weight {args.weight}, T=4)", {"distill": {"teacher": str(teacher), "temperature": 4.0, "weight": args.weight}})):
            started = time.perf_counter()
            recipe = validate_recipe({**student, **extra, "output": {**student["output"], "name": name.split()[0]}})
            outcome = api.run(recipe, plugins=plugins, data_root=args.data)
            s = outcome.summary
            print(f"student  timm:resnet10t from scratch, {name}: best val accuracy {s['best']['accuracy']:.3f}, final {s['final']['accuracy']:.3f} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
