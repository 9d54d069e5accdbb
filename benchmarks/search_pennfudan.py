"""Acceptance of ``visiontl search`` on PennFudan segmentation: a 15-minute search for the edge target.

The search starts from recipes/segment_pennfudan_squeezenet.yaml (DeepLabV3 over the ImageNet
SqueezeNet 1.1 features, progressive 6+3+3 epochs, person IoU 0.692 in docs/segmentation.md)
and searches strategy, learning rate and spread, input size (192, 256) and augmentation for
that model (``--top 0``: the selection engine's segmentation candidates need downloaded
weights). Finalists are exported to OpenVINO int8 and timed.

Acceptance: the best trial's person IoU >= the recipe's (0.692, docs/segmentation.md). Exit
status 1 when it is lower.

    python benchmarks/search_pennfudan.py --data ../shared/data --out runs/search/pennfudan-edge

It runs:

    VISIONTL_DATA_DIR=<data> visiontl search --recipe recipes/segment_pennfudan_squeezenet.yaml \\
        --target edge --budget 15m --top 0 --sizes 192,256 --formats openvino-int8 --out <out>
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "segment_pennfudan_squeezenet.yaml"
RECIPE_IOU = 0.692  # docs/segmentation.md: the recipe's person IoU (final = best epoch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "search" / "pennfudan-edge")
    parser.add_argument("--budget", default="15m")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run of this benchmark")
    args = parser.parse_args(argv)
    visiontl = shutil.which("visiontl", path=str(Path(sys.executable).parent)) or "visiontl"
    if args.resume:
        command = [visiontl, "search", "--resume", str(args.out)]
    else:
        command = [visiontl, "search", "--recipe", str(RECIPE), "--target", "edge", "--budget", args.budget, "--top", "0",
                   "--sizes", "192,256", "--formats", "openvino-int8", "--out", str(args.out)]
    env = {**os.environ, "VISIONTL_DATA_DIR": str(args.data.resolve()), "MPLBACKEND": "Agg"}
    print(f"VISIONTL_DATA_DIR={shlex.quote(str(args.data))} {shlex.join(command)}", flush=True)
    started = time.perf_counter()
    code = subprocess.call(command, env=env)
    wall = time.perf_counter() - started
    if code != 0:
        print(f"visiontl search exited with {code}")
        return 1
    board = json.loads((args.out / "leaderboard.json").read_text())
    done = [r for r in board["trials"] if r["state"] == "complete"]
    best = max(done, key=lambda r: r["value"]) if done else None
    print(f"\nwall time {wall / 60:.1f} min; {len(board['trials'])} trials, {len(done)} complete")
    for r in (x for x in board["trials"] if x["pareto"]):
        print(f"front: trial {r['trial']} {r['label']}: person IoU {r['value']:.4f}, "
              + ", ".join(f"{f} {ms:.2f} ms" for f, ms in r["latency_ms"].items()))
    ok = best is not None and best["value"] >= RECIPE_IOU
    print(f"best person IoU {best['value'] if best else float('nan'):.4f} (>= the recipe's {RECIPE_IOU}: {'yes' if ok else 'NO'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
