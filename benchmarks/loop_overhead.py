"""Training-step throughput: visiontl's shared loop against a plain hand-written PyTorch loop.

Same model (timm resnet18, random init, full fine-tuning), same data (hymenoptera train,
the same transform objects), same batch size, threads and optimizer. Each side trains
``--epochs`` epochs; the first is warm-up and the rest are timed (training passes only, no
evaluation). Sides alternate ``--repeats`` times and the medians are compared.

    python benchmarks/loop_overhead.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def plain_loop(data: Path, size: int, batch: int, epochs: int, seed: int) -> list[float]:
    import timm
    from torchvision.datasets import ImageFolder

    from visiontl.contracts import Preprocessing
    from visiontl.data.transforms import train_transform

    torch.manual_seed(seed)
    model = timm.create_model("resnet18", num_classes=2)
    transform = train_transform(Preprocessing((size, size)), "light")
    dataset = ImageFolder(str(data / "hymenoptera_data" / "train"), transform=transform, loader=lambda p: __import__("PIL.Image", fromlist=["Image"]).open(p).convert("RGB"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    rates = []
    for _ in range(epochs):
        model.train()
        seen, t0 = 0, time.perf_counter()
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss.item()
            seen += len(y)
        rates.append(seen / (time.perf_counter() - t0))
    return rates[1:]


def visiontl_loop(data: Path, size: int, batch: int, epochs: int, seed: int) -> list[float]:
    from visiontl import api
    from visiontl.config.loader import validate_recipe
    from visiontl.plugin_manager import build_plugin_manager

    with tempfile.TemporaryDirectory() as out:
        recipe = validate_recipe({
            "data": {"root": str(data / "hymenoptera_data"), "image_size": size},
            "model": {"id": "timm:resnet18"},
            "strategy": {"name": "full"},
            "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
            "scheduler": {"name": "none"},
            "augmentation": {"preset": "light"},
            "train": {"epochs": epochs, "batch_size": batch, "seed": seed, "progress": False, "cache_features": "off"},
            "output": {"dir": out, "name": "bench", "plots": False, "checkpoints": False},
        })
        history = api.run(recipe, plugins=build_plugin_manager()).result.history
    return [row["train_images"] / row["train_seconds"] for row in history[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plain: list[float] = []
    ours: list[float] = []
    for r in range(args.repeats):
        plain += plain_loop(args.data, args.size, args.batch, args.epochs, r)
        ours += visiontl_loop(args.data, args.size, args.batch, args.epochs, r)
    p, v = statistics.median(plain), statistics.median(ours)
    print(f"threads {torch.get_num_threads()}, batch {args.batch}, {args.size}px, timm resnet18 full fine-tuning, hymenoptera train (245 images)")
    print(f"plain PyTorch loop : {p:7.1f} images/s (median of {len(plain)} timed epochs: {', '.join(f'{x:.1f}' for x in plain)})")
    print(f"visiontl loop      : {v:7.1f} images/s (median of {len(ours)} timed epochs: {', '.join(f'{x:.1f}' for x in ours)})")
    print(f"ratio visiontl/plain: {v / p:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
