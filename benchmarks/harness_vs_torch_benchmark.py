"""`visiontl benchmark` latencies against `torch.utils.benchmark`, same models, same threads.

For each of five classification models (the seeds' comparison: efficientnet_b0, resnet50,
mobilenetv2_100, convnext_tiny, swin_tiny; random weights, batch 1, 224 px) it measures

* visiontl: the benchmark suite behind ``visiontl benchmark`` (the generic harness through
  the ``visiontl_benchmark`` hook: warm-up, sync around every call, median of per-call times);
* torch.utils.benchmark: ``Timer(num_threads=N).blocked_autorange`` on the same module and
  input under ``torch.inference_mode`` (median of block means);

alternating the two ``--rounds`` times, one measurement of each side per round, back to back.
On a shared machine the load drifts over seconds (other processes come and go), so a round's
two measurements see the same load while different rounds do not: the check compares the two
sides *within* each round and takes the median over rounds of the relative difference, which
must be within ``--tolerance`` (15%). Each side's median over rounds is reported too.

    python benchmarks/harness_vs_torch_benchmark.py --threads 2 --out harness_vs_torch.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

MODELS = ("timm:efficientnet_b0", "timm:resnet50", "timm:mobilenetv2_100", "timm:convnext_tiny", "timm:swin_tiny_patch4_window7_224")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7, help="alternations of the two sides")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum timed seconds per measurement")
    parser.add_argument("--tolerance", type=float, default=0.15)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)

    import torch
    import torch.utils.benchmark as tb

    from visiontl.benchmark.formats import parse_formats
    from visiontl.benchmark.suite import SuiteSpec, run_suite
    from visiontl.benchmark.targets import load_targets
    from visiontl.plugin_manager import get_plugins

    torch.set_num_threads(args.threads)
    plugins = get_plugins()
    spec = SuiteSpec(formats=parse_formats("torch"), threads=args.threads, warmup=3, min_repeats=10, min_seconds=args.seconds)
    results = []
    for model_id in args.models:
        target = load_targets(model_id, plugins)[0]
        model = target.model.eval()
        x = torch.rand(1, 3, *target.preprocessing.input_size)

        def forward(model=model, x=x) -> None:  # bound now: the timer calls it later
            with torch.inference_mode():
                model(x)

        ours, theirs = [], []
        for _ in range(args.rounds):
            rows = run_suite([model_id], spec, plugins, progress=lambda _m: None).rows
            ours.append(rows[0]["latency_ms_p50"])
            timer = tb.Timer(stmt="forward()", globals={"forward": forward}, num_threads=args.threads)
            theirs.append(timer.blocked_autorange(min_run_time=args.seconds).median * 1000.0)
        a, b = statistics.median(ours), statistics.median(theirs)
        paired = [o / t - 1.0 for o, t in zip(ours, theirs, strict=True)]  # same round, same load
        diff = abs(statistics.median(paired))
        row = {"model": model_id, "threads": args.threads, "input": list(target.preprocessing.input_size),
               "visiontl_p50_ms": round(a, 3), "torch_benchmark_median_ms": round(b, 3), "relative_difference": round(diff, 4),
               "round_differences": [round(p, 4) for p in paired], "medians_difference": round(abs(a - b) / b, 4),
               "within_tolerance": diff <= args.tolerance, "visiontl_rounds_ms": [round(v, 3) for v in ours],
               "torch_benchmark_rounds_ms": [round(v, 3) for v in theirs]}
        results.append(row)
        print(f"{model_id:<40} visiontl p50 {a:8.2f} ms   torch.utils.benchmark {b:8.2f} ms   paired diff {diff * 100:5.1f}% (medians {abs(a - b) / b * 100:5.1f}%)"
              f"   {'ok' if row['within_tolerance'] else 'OUTSIDE'}", flush=True)
    ok = all(r["within_tolerance"] for r in results)
    print(f"threads {args.threads}, batch 1, random weights, {args.rounds} rounds; "
          f"agree within {args.tolerance * 100:.0f}% (median of per-round differences): {'yes' if ok else 'NO'}")
    if args.out:
        args.out.write_text(json.dumps({"torch": torch.__version__, "threads": args.threads, "results": results, "ok": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
