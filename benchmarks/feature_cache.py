"""Feature caching: epochs of a head-only phase with cached backbone features vs without.

Runs recipes/hymenoptera_feature_extraction.yaml (SqueezeNet 1.1 ImageNet features,
hymenoptera) twice in one process, ``train.cache_features`` on and off, and compares the
seconds per epoch (training pass plus validation) after the first epoch; the first epoch of
the cached run also pays for computing the cache, printed separately.

    python benchmarks/feature_cache.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def epochs(data: Path, mode: str, n: int, out: str) -> list[dict]:
    from visiontl import api
    from visiontl.config.loader import load_recipe
    from visiontl.plugin_manager import build_plugin_manager

    recipe = load_recipe(
        ROOT / "recipes" / "hymenoptera_feature_extraction.yaml",
        [f"train.epochs={n}", f"train.cache_features={mode}", "train.progress=false", f"output.dir={out}", f"output.name=cache_{mode}", "output.plots=false"],
    )
    result = api.run(recipe, plugins=build_plugin_manager(), data_root=data).result
    if mode == "on":
        print(f"computing the cache (train + val features, once): {result.timings['feature_cache_head']:.2f} s")
    return result.history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        cached = epochs(args.data, "on", args.epochs, out)
        plain = epochs(args.data, "off", args.epochs, out)
    print(f"threads {torch.get_num_threads()}, torchvision:squeezenet1_1 feature extraction, hymenoptera (245 train / 153 val images)")
    for name, rows in (("cached  ", cached), ("uncached", plain)):
        print(f"{name}: " + ", ".join(f"{r['seconds']:.2f}" for r in rows) + " s per epoch; accuracy " + ", ".join(f"{r['accuracy']:.3f}" for r in rows))
    c = statistics.median(r["seconds"] for r in cached[1:])
    p = statistics.median(r["seconds"] for r in plain[1:])
    print(f"median epoch after the first: cached {c:.3f} s, uncached {p:.3f} s -> {p / c:.1f}x faster (target >= 5x)")


if __name__ == "__main__":
    main()
