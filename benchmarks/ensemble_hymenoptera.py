"""An ensemble of two hymenoptera classifiers next to its members: accuracy and latency.

Trains recipes/hymenoptera_feature_extraction.yaml (SqueezeNet 1.1 ImageNet features, a new
head, 15 epochs) twice with different seeds, writes an ensemble recipe over the two runs,
evaluates it with ``visiontl.api.evaluate`` (which scores each member on the same batches)
and times members and ensemble at batch 1 with the generic harness (same threads, warm-up,
median and p90). The Grad-CAM of each member on a few val images is written as well.

    VISIONTL_DATA_DIR=../shared/data python benchmarks/ensemble_hymenoptera.py --out /tmp/ens
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def train(data: Path, seed: int, out: Path, epochs: int) -> Path:
    from visiontl import api
    from visiontl.config.loader import load_recipe

    recipe = load_recipe(
        ROOT / "recipes" / "hymenoptera_feature_extraction.yaml",
        [f"train.seed={seed}", f"train.epochs={epochs}", "train.progress=false", f"output.dir={out}", f"output.name=seed{seed}", "output.plots=false"],
    )
    return api.run(recipe, data_root=data).run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("VISIONTL_DATA_DIR", ROOT.parent / "shared" / "data")))
    parser.add_argument("--out", type=Path, default=Path("/tmp/visiontl-ensemble-hymenoptera"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["VISIONTL_DATA_DIR"] = str(args.data.resolve())
    torch.set_num_threads(args.threads)

    from visiontl import api
    from visiontl.benchmark.harness import benchmark_module
    from visiontl.contracts import BenchmarkRequest
    from visiontl.explain.run import explain

    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runs = [train(args.data, seed, args.out, args.epochs) for seed in args.seeds]
    trained = time.perf_counter() - start
    recipe = {
        "task": "classification",
        "data": {"format": "imagefolder", "root": "hymenoptera_data", "train": "train", "val": "val"},
        "model": {"id": "torchvision:squeezenet1_1"},
        "ensemble": {"members": [str(r) for r in runs]},
        "output": {"name": "hymenoptera_ensemble"},
    }
    recipe_path = args.out / "hymenoptera_ensemble.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))

    metrics = api.evaluate(recipe_path, data_root=args.data)
    loaded = api.load_trained(recipe_path)
    request = BenchmarkRequest(input_size=tuple(loaded.preprocessing.input_size), batch_size=1, threads=args.threads, warmup=10, min_repeats=50, min_seconds=3.0)
    rows = []
    for name, member, row in zip(loaded.member_names, loaded.members, metrics["members"], strict=True):
        bench = benchmark_module(member.model, member.model_id, request)
        rows.append({"model": name, "accuracy": row["accuracy"], "val_loss": row["val_loss"], "p50_ms": bench.latency_ms_p50, "p90_ms": bench.latency_ms_p90, "params": bench.params})
    bench = benchmark_module(loaded.model, loaded.model_id, request)
    rows.append({"model": "ensemble", "accuracy": metrics["accuracy"], "val_loss": metrics["val_loss"], "p50_ms": bench.latency_ms_p50, "p90_ms": bench.latency_ms_p90, "params": bench.params})

    val = args.data / "hymenoptera_data" / "val"
    images = [sorted((val / c).iterdir())[0] for c in ("ants", "bees")]
    cams = [explain(run, images).out_dir for run in runs]

    print(f"hymenoptera val ({metrics['num_samples']} images), torchvision:squeezenet1_1 feature extraction, {args.epochs} epochs per member ({trained:.0f} s to train both)")
    print(f"latency at batch 1, {request.input_size[0]} px, {bench.threads} thread(s), {bench.device}, torch {bench.versions.get('torch')}")
    print(f"{'model':<10} {'accuracy':>8} {'val_loss':>8} {'p50 ms':>8} {'p90 ms':>8} {'params':>9}")
    for r in rows:
        print(f"{r['model']:<10} {r['accuracy']:>8.4f} {r['val_loss']:>8.4f} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['params']:>9,}")
    print(f"Grad-CAM overlays: {', '.join(str(c) for c in cams)}")
    (args.out / "ensemble_report.json").write_text(json.dumps({"rows": rows, "threads": bench.threads, "versions": bench.versions, "recipe": str(recipe_path)}, indent=2))


if __name__ == "__main__":
    main()
