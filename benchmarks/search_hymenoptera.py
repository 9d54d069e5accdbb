"""Acceptance of ``visiontl search`` on hymenoptera: a 20-minute, latency-aware search for the edge target.

The search starts from recipes/hymenoptera_progressive.yaml (SqueezeNet 1.1 with the ImageNet
features file, progressive 3+3+4 epochs, best val accuracy 0.935 by hand) and adds the
selection engine's top candidates for the edge target (those whose pretrained weights cannot
be fetched, e.g. offline, are dropped at the start and listed). Finalists are exported to
OpenVINO int8 and ONNX Runtime int8 and timed on this machine.

Acceptance: the best trial's val accuracy >= 0.935, and the Pareto front lists a measured
openvino-int8 latency. Exit status 1 when a criterion fails; the search folder keeps the
leaderboard, pareto.png and best.yaml for docs/search.md.

    python benchmarks/search_hymenoptera.py --data ../shared/data --out runs/search/hymenoptera-edge

It runs (printed first, so it can be copied):

    VISIONTL_DATA_DIR=<data> visiontl search --recipe recipes/hymenoptera_progressive.yaml \\
        --target edge --budget 20m --sizes 160,224 --formats openvino-int8,onnx-int8 \\
        --threads <threads> --out <out>
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
RECIPE = ROOT / "recipes" / "hymenoptera_progressive.yaml"
TARGET_ACCURACY = 0.935


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder (hymenoptera_data, weights/)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "search" / "hymenoptera-edge")
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per trial (2 on the 2-core reference machine)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run of this benchmark")
    args = parser.parse_args(argv)
    visiontl = shutil.which("visiontl", path=str(Path(sys.executable).parent)) or "visiontl"
    if args.resume:
        command = [visiontl, "search", "--resume", str(args.out)]
    else:
        command = [visiontl, "search", "--recipe", str(RECIPE), "--target", "edge", "--budget", args.budget, "--sizes", "160,224",
                   "--formats", "openvino-int8,onnx-int8", "--threads", str(args.threads), "--out", str(args.out)]
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
    front = [r for r in board["trials"] if r["pareto"]]
    counts = ", ".join(f"{state} {sum(r['state'] == state for r in board['trials'])}" for state in ("complete", "pruned", "stopped", "failed"))
    print(f"\nwall time {wall / 60:.1f} min; trials: {len(board['trials'])} ({counts})")
    for r in front:
        print(f"front: trial {r['trial']} {r['label']}: accuracy {r['value']:.4f}, "
              + ", ".join(f"{f} {ms:.2f} ms" for f, ms in r["latency_ms"].items()) + f", torch {r['torch_ms']:.2f} ms")
    ok_accuracy = best is not None and best["value"] >= TARGET_ACCURACY
    ok_latency = any("openvino-int8" in r["latency_ms"] for r in front)
    print(f"best val accuracy {best['value'] if best else float('nan'):.4f} (>= {TARGET_ACCURACY}: {'yes' if ok_accuracy else 'NO'}); "
          f"openvino-int8 latency on the front: {'yes' if ok_latency else 'NO'}")
    return 0 if ok_accuracy and ok_latency else 1


if __name__ == "__main__":
    sys.exit(main())
