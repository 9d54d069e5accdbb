"""Export acceptance for detectors and segmenters on this CPU: every format, verified, timed.

1. Export a trained run with ``visiontl export`` to ONNX fp32/int8 and OpenVINO fp32/bf16/int8
   (each verified against PyTorch on the run's validation images: box AP50/mAP, or mIoU and
   per-class IoU, agreement, and the cost of the precision). Detectors export as one
   per-image graph (NMS inside); segmenters through the generic path.
2. Time PyTorch eager fp32 and every verified export at batch 1 on the *real validation
   images* (each image at its own size, through the task's own ``forward_eval``), alternating
   formats image by image over ``--rounds`` rounds so that machine load hits every format
   alike; p50 over all calls.
3. Check: the fastest verified export whose metric is within 1 point of PyTorch's is at least
   ``--speedup`` times faster than eager fp32.

    VISIONTL_DATA_DIR=../shared/data visiontl run recipes/detect_pennfudan_squeezenet.yaml
    VISIONTL_DATA_DIR=../shared/data python benchmarks/export_dense_speed.py runs/detection/pennfudan_squeezenet \
        --threads 1 --metric map50 --speedup 3
    VISIONTL_DATA_DIR=../shared/data visiontl run recipes/segment_pennfudan_squeezenet.yaml
    VISIONTL_DATA_DIR=../shared/data python benchmarks/export_dense_speed.py runs/segmentation/segment_pennfudan_squeezenet \
        --threads 1 --metric iou_person --speedup 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

EXPORTS = (("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained run directory (or checkpoint)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the timed images")
    parser.add_argument("--images", type=int, default=20, help="validation images timed per round")
    parser.add_argument("--metric", default=None, help="the metric of the 1-point check (default: the recipe's)")
    parser.add_argument("--speedup", type=float, default=3.0, help="required speed-up of the fastest verified export")
    parser.add_argument("--exports", type=Path, default=None, help="export folder (default: <run>/exports)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)

    import torch

    from visiontl import api, env
    from visiontl.export import images
    from visiontl.export.pipeline import export
    from visiontl.export.runtime import load_runtime
    from visiontl.plugin_manager import get_plugins

    torch.set_num_threads(args.threads)
    plugins = get_plugins()
    reports = {}
    for fmt, precision in EXPORTS:
        report = export(args.run, fmt, precision, out=args.exports, threads=args.threads, plugins=plugins)
        ver = report.manifest.verification
        metric = args.metric or ver["primary_metric"]
        reports[f"{fmt} {precision}"] = report
        print(f"exported {fmt:<9} {precision}: {report.size_bytes / 1e6:6.2f} MB, {metric} {ver['pytorch_fp32'].get(metric, float('nan')):.4f} -> "
              f"{ver['export'].get(metric, float('nan')):.4f}, agreement {ver['agreement'] * 100:.2f}% of {ver['compared']} {ver['agreement_unit']}, "
              f"{'verified' if report.passed else 'NOT verified: ' + '; '.join(report.problems)}", flush=True)

    loaded = api.load_trained(args.run, plugins)
    task = api.resolve_task(plugins, loaded.task)
    _, val = images.val_dataset(loaded.recipe, task, loaded.preprocessing, env.data_root())
    batches = list(images.batches(val, task, 1, args.images))
    modules = {"torch fp32": loaded.model.eval()}
    for key, report in reports.items():
        modules[key] = load_runtime(report.manifest_path, args.threads)
    timings: dict[str, list[float]] = {key: [] for key in modules}
    with torch.no_grad():
        for module in modules.values():  # warm-up: first calls compile and allocate
            for batch in batches[:3]:
                task.forward_eval(module, batch)
        for r in range(args.rounds):
            for batch in batches:
                for key, module in modules.items():
                    started = time.perf_counter()
                    task.forward_eval(module, batch)
                    timings[key].append((time.perf_counter() - started) * 1000)
            print(f"round {r + 1}: " + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in timings.items()), flush=True)

    first = reports["onnx fp32"].manifest.verification
    metric = args.metric or first["primary_metric"]
    base = statistics.median(timings["torch fp32"])
    rows = [{"format": "torch fp32 (eager)", "p50_ms": base, "p90_ms": _p90(timings["torch fp32"]), "speedup": 1.0,
             "metric": first["pytorch_fp32"].get(metric), "delta_points": 0.0, "verified": True, "size_mb": None}]
    for key, report in reports.items():
        ver = report.manifest.verification
        p50 = statistics.median(timings[key])
        delta = ver["deltas"].get(metric, float("nan"))
        rows.append({"format": key, "p50_ms": p50, "p90_ms": _p90(timings[key]), "speedup": base / p50, "metric": ver["export"].get(metric),
                     "delta_points": delta * 100, "verified": report.passed, "size_mb": report.size_bytes / 1e6,
                     "agreement": ver["agreement"], "runtime": ver.get("runtime_settings", {}), "deltas": ver["deltas"]})
    print()
    print(f"{'format':<20} {'p50 ms':>8} {'p90 ms':>8} {'speed-up':>9} {metric:>10} {'points':>7} {'size MB':>8}  verified")
    for row in rows:
        size = f"{row['size_mb']:8.2f}" if row["size_mb"] is not None else "       -"
        print(f"{row['format']:<20} {row['p50_ms']:8.1f} {row['p90_ms']:8.1f} {row['speedup']:8.2f}x {row['metric']:10.4f} "
              f"{row['delta_points']:+7.2f} {size}  {'yes' if row['verified'] else 'NO'}")
    within = [r for r in rows[1:] if r["verified"] and abs(r["delta_points"]) <= 1.0]
    fastest = max(within, key=lambda r: r["speedup"]) if within else None
    ok = fastest is not None and fastest["speedup"] >= args.speedup
    print()
    print(f"threads {args.threads}, batch 1, {len(batches)} validation images at their own size x {args.rounds} rounds, "
          f"formats alternated image by image")
    if fastest:
        print(f"fastest verified export within 1 point of PyTorch's {metric}: {fastest['format']} at {fastest['p50_ms']:.1f} ms, "
              f"{fastest['speedup']:.1f}x PyTorch eager fp32 (target >= {args.speedup:g}x): {'ok' if ok else 'NO'}")
    if args.out:
        args.out.write_text(json.dumps({"threads": args.threads, "rounds": args.rounds, "metric": metric, "rows": rows, "ok": ok},
                                       indent=1, default=str))
    return 0 if ok else 1


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


if __name__ == "__main__":
    sys.exit(main())
