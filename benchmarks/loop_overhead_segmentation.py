"""Whole-epoch cost of visiontl's loop for segmentation, against a plain PyTorch loop doing the
same work: train pass + validation pass scored by the same evaluator.

Same model (the recipe's DeepLabV3 head over SqueezeNet 1.1, built once per side by the same
plugin, full fine-tuning), the same dataset objects (PennFudan, last 50 as val), batch size,
optimizer and threads. visiontl's epoch also includes everything its loop adds: metrics.csv,
the per-epoch row, audits' bookkeeping and writing ``last.pt`` (and ``best.pt`` when the
metric improves), the hashed checkpoints a run can resume from. Each epoch is timed wall to
wall (for visiontl: between consecutive epoch-end events); the first epoch is warm-up. Sides
alternate ``--repeats`` times; medians are compared.

    python benchmarks/loop_overhead_segmentation.py --data ../shared/data --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def recipe_dict(data: Path, out: str, epochs: int, size: int, batch: int, seed: int) -> dict[str, Any]:
    return {
        "task": "segmentation",
        "data": {"format": "masks", "root": str(data / "pennfudan"), "images": "images", "masks": "masks", "val_last": 50,
                 "class_names": ["background", "person"], "image_size": size},
        "model": {"id": "torchvision:deeplabv3", "options": {"backbone": "torchvision:squeezenet1_1", "channels": 128}},
        "strategy": {"name": "full"},
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
        "scheduler": {"name": "none"},
        "augmentation": {"preset": "none"},
        "loss": {"name": "cross_entropy"},
        "train": {"epochs": epochs, "batch_size": batch, "seed": seed, "progress": False, "cache_features": "off"},
        "output": {"dir": out, "name": "bench", "plots": False},
    }


def plain_loop(data: Path, epochs: int, size: int, batch: int, seed: int) -> list[float]:
    """The same model, data and evaluator in a hand-written loop (no checkpoints, no records)."""
    from visiontl import api
    from visiontl.config.loader import validate_recipe
    from visiontl.plugin_manager import build_plugin_manager

    with tempfile.TemporaryDirectory() as out:
        recipe = validate_recipe(recipe_dict(data, out, epochs, size, batch, seed), "bench")
        prepared = api.prepare(recipe, build_plugin_manager())
        task, info, model = prepared.task, prepared.info, prepared.built.model
        train, val = task.datasets(recipe, info, prepared.built.preprocessing, prepared.data_root)
        loss_fn = task.loss_function(recipe, info)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        train_loader = torch.utils.data.DataLoader(train, batch_size=batch, shuffle=True, collate_fn=task.collate)
        val_loader = torch.utils.data.DataLoader(val, batch_size=batch, collate_fn=task.collate)
        seconds = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            model.train()
            for b in train_loader:
                loss = loss_fn(model(b.inputs), b.targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss.item()
            model.eval()
            evaluator = task.evaluator(recipe, info)
            with torch.no_grad():
                for b in val_loader:
                    evaluator.update(task.forward_eval(model, b), b.targets)
            evaluator.compute()
            seconds.append(time.perf_counter() - t0)
    return seconds[1:]


def visiontl_loop(data: Path, epochs: int, size: int, batch: int, seed: int) -> list[float]:
    from visiontl import api, hookimpl
    from visiontl.config.loader import validate_recipe
    from visiontl.plugin_manager import build_plugin_manager

    stamps: list[float] = []

    class Clock:
        @hookimpl
        def visiontl_on_phase_start(self, run: Any, phase: Any, index: int) -> None:
            stamps.append(time.perf_counter())

        @hookimpl
        def visiontl_on_epoch_end(self, run: Any, phase: Any, epoch: int, metrics: dict[str, Any]) -> None:
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        recipe = validate_recipe(recipe_dict(data, out, epochs, size, batch, seed), "bench")
        api.run(recipe, plugins=build_plugin_manager([("clock", Clock())]))
    seconds = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plain: list[float] = []
    ours: list[float] = []
    for r in range(args.repeats):
        plain += plain_loop(args.data, args.epochs, args.size, args.batch, r)
        ours += visiontl_loop(args.data, args.epochs, args.size, args.batch, r)
    p, v = statistics.median(plain), statistics.median(ours)
    print(f"threads {torch.get_num_threads()}, batch {args.batch}, {args.size}px, DeepLabV3/SqueezeNet full fine-tuning, "
          "PennFudan (120 train, 50 val), epoch = train + validation")
    print(f"plain PyTorch loop : {p:6.2f} s/epoch (median of {len(plain)}: {', '.join(f'{x:.2f}' for x in plain)})")
    print(f"visiontl loop      : {v:6.2f} s/epoch (median of {len(ours)}: {', '.join(f'{x:.2f}' for x in ours)})")
    print(f"visiontl/plain time: {v / p:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
