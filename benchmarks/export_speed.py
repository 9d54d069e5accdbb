"""Export acceptance on this CPU: the hymenoptera classifier, exported every way.

1. Export a trained run (``recipes/hymenoptera_feature_extraction.yaml``: SqueezeNet 1.1
   ImageNet features, a trained head) to ONNX fp32/int8, OpenVINO fp32/bf16/int8 and
   TorchScript fp32/bf16 with ``visiontl export`` (each verified against PyTorch on the 153
   validation images: max abs difference, top-1 agreement, accuracy).
2. Time PyTorch eager fp32 and every verified export at batch 1 with the same threads,
   through the benchmark harness, alternating formats over ``--rounds`` rounds so that
   machine load hits every format alike (median over rounds).
3. Check: the fastest export with accuracy within 1 point of fp32 is at least 4x faster than
   PyTorch eager fp32; every format is within 1 point; ONNX fp32 agrees with PyTorch on the
   top-1 of every validation image.

    VISIONTL_DATA_DIR=../shared/data visiontl run recipes/hymenoptera_feature_extraction.yaml
    VISIONTL_DATA_DIR=../shared/data python benchmarks/export_speed.py runs/classification/hymenoptera_feature_extraction --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

EXPORTS = (("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"),
           ("torchscript", "fp32"), ("torchscript", "bf16"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained run directory (or checkpoint)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5, help="minimum timed seconds per measurement")
    parser.add_argument("--speedup", type=float, default=4.0, help="required speed-up of the fastest verified export")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--exports", type=Path, default=None, help="export folder (default: <run>/exports)")
    args = parser.parse_args(argv)

    import torch

    from visiontl.api import load_trained
    from visiontl.contracts import BenchmarkRequest
    from visiontl.export.pipeline import export
    from visiontl.export.runtime import load_runtime
    from visiontl.plugin_manager import get_plugins

    torch.set_num_threads(args.threads)
    plugins = get_plugins()
    reports = {}
    for fmt, precision in EXPORTS:
        report = export(args.run, fmt, precision, out=args.exports, threads=args.threads, plugins=plugins)
        ver = report.manifest.verification
        reports[f"{fmt} {precision}"] = report
        print(f"exported {fmt:<11} {precision}: {report.size_bytes / 1e6:5.2f} MB, accuracy {ver['pytorch_fp32']['accuracy']:.4f} -> "
              f"{ver['export']['accuracy']:.4f}, top-1 agreement {ver['agreement'] * 100:.2f}% of {ver['images']}, "
              f"max abs diff {ver['max_abs_diff']:.2e}, {'verified' if report.passed else 'NOT verified'}", flush=True)

    loaded = load_trained(args.run, plugins)
    modules = {"torch fp32": loaded.model.eval()}
    for key, report in reports.items():
        modules[key] = load_runtime(report.manifest_path, args.threads)
    request = BenchmarkRequest(input_size=loaded.preprocessing.input_size, batch_size=1, threads=args.threads,
                               precision="fp32", warmup=10, min_repeats=30, min_seconds=args.seconds)
    timings: dict[str, list[float]] = {key: [] for key in modules}
    for r in range(args.rounds):
        for key, module in modules.items():
            result = plugins.hook.visiontl_benchmark(model=module, built=None, request=request)
            timings[key].append(result.latency_ms_p50)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in timings.items()), flush=True)

    base = statistics.median(timings["torch fp32"])
    rows = [{"format": "torch fp32 (eager)", "p50_ms": base, "speedup": 1.0, "accuracy": reports["onnx fp32"].manifest.verification["pytorch_fp32"]["accuracy"],
             "top1_agreement": 1.0, "verified": True, "size_mb": None}]
    for key, report in reports.items():
        ver = report.manifest.verification
        p50 = statistics.median(timings[key])
        rows.append({"format": key, "p50_ms": p50, "speedup": base / p50, "accuracy": ver["export"]["accuracy"],
                     "top1_agreement": ver["agreement"], "verified": report.passed, "size_mb": report.size_bytes / 1e6,
                     "max_abs_diff": ver["max_abs_diff"], "rounds_ms": timings[key]})
    print()
    print(f"{'format':<20} {'p50 ms':>8} {'speed-up':>9} {'val acc':>8} {'top-1 agree':>12} {'size MB':>8}  verified")
    for row in rows:
        size = f"{row['size_mb']:8.2f}" if row["size_mb"] is not None else "       -"
        print(f"{row['format']:<20} {row['p50_ms']:8.2f} {row['speedup']:8.2f}x {row['accuracy']:8.4f} {row['top1_agreement'] * 100:11.2f}% {size}  {'yes' if row['verified'] else 'NO'}")
    verified = [r for r in rows[1:] if r["verified"]]
    fastest = max(verified, key=lambda r: r["speedup"]) if verified else None
    onnx_agrees = reports["onnx fp32"].manifest.verification["agreement"] == 1.0
    all_within = all(r["verified"] for r in rows[1:])
    ok = fastest is not None and fastest["speedup"] >= args.speedup and all_within and onnx_agrees
    print()
    print(f"threads {args.threads}, batch 1, {loaded.preprocessing.input_size[0]}px, median of {args.rounds} rounds")
    if fastest:
        print(f"fastest verified export: {fastest['format']} at {fastest['p50_ms']:.2f} ms, {fastest['speedup']:.1f}x PyTorch eager fp32 "
              f"(target >= {args.speedup:.0f}x): {'ok' if fastest['speedup'] >= args.speedup else 'NO'}")
    print(f"every format within 1 point of fp32 accuracy: {'yes' if all_within else 'NO'}; "
          f"ONNX fp32 agrees on the top-1 of every val image: {'yes' if onnx_agrees else 'NO'}")
    if args.out:
        args.out.write_text(json.dumps({"threads": args.threads, "rounds": args.rounds, "rows": rows, "ok": ok}, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
