"""Finalists: the Pareto front of validation metric vs latency, exported and measured.

1. Every (model, input size) among the finished trials is timed once in PyTorch eager at
   batch 1 on this machine (its best trial's checkpoint), through the ``visiontl_benchmark``
   hook: the same harness ``visiontl benchmark`` uses.
2. The front of (metric, that latency) gives the finalists (at most ``finalists``, best first).
3. Each finalist is exported in the target's formats by the export pipeline (verified
   against PyTorch on the validation images and recorded in its run, exactly as
   ``visiontl export`` would) and the export is timed with the same harness.
4. The deployment format is the first of the target's formats every finalist could be
   measured in; the final front and the chosen trial use its latency.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from visiontl.search.pareto import front
from visiontl.search.spec import SearchSpec

Say = Callable[[str], None]
#: The target formats (``targets.yaml``) the export pipeline cannot produce, and why.
UNSUPPORTED = {"tflite": "no TFLite exporter in visiontl yet", "tensorrt": "no TensorRT exporter in visiontl yet"}


def target_formats(spec: SearchSpec) -> tuple[list[str], list[str]]:
    """``(formats to measure, notes on the target formats left out)``: the search's
    ``formats`` when given, else the target's ``export`` list."""
    from visiontl.search.section import LATENCY_FORMATS
    from visiontl.selection.targets import get_target

    settings = spec.settings
    if settings.formats:
        return list(settings.formats), []
    wanted = list(get_target(settings.target).export)
    notes = [f"{f}: {UNSUPPORTED.get(f, 'not a format visiontl measures')}" for f in wanted if f not in LATENCY_FORMATS]
    return [f for f in wanted if f in LATENCY_FORMATS], notes


def _request(loaded: Any, settings: Any) -> Any:
    from visiontl.contracts import BenchmarkRequest

    return BenchmarkRequest(input_size=tuple(loaded.preprocessing.input_size), batch_size=1, device="cpu", threads=settings.threads,
                            warmup=3, min_repeats=10, min_seconds=settings.bench_seconds)


def time_module(module: Any, loaded: Any, settings: Any, plugins: Any) -> float:
    """Batch-1 p50 latency (ms) of ``module`` through the benchmark hook."""
    result = plugins.hook.visiontl_benchmark(model=module, built=loaded.built, request=_request(loaded, settings))
    if result is None:
        raise RuntimeError("no plugin answered visiontl_benchmark")
    return float(result.latency_ms_p50)


def export_and_time(run_dir: Path, fmt: str, loaded: Any, spec: SearchSpec, plugins: Any) -> dict[str, Any]:
    """Export ``run_dir`` as ``fmt`` (``onnx-int8`` -> ONNX at int8) and time the export.

    An export already in the run (same format and precision, manifest on disk) is reused.
    """
    import json

    from visiontl.benchmark.formats import BENCH_FORMATS
    from visiontl.export.pipeline import export
    from visiontl.export.runtime import load_runtime

    settings = spec.settings
    bench = BENCH_FORMATS[fmt]
    assert bench.export is not None
    precision = "int8" if bench.quantized else "fp32"
    key = f"{bench.export}-{precision}"
    summary_path = Path(run_dir) / "summary.json"
    recorded = (json.loads(summary_path.read_text(encoding="utf-8")).get("exports") or {}).get(key) if summary_path.is_file() else None
    if recorded and Path(recorded["manifest"]).is_file():
        manifest_path, value, passed = Path(recorded["manifest"]), recorded.get("export"), recorded.get("passed")
    else:
        # force: the leaderboard shows an int8 beyond its bound as not passed, beside its latency
        report = export(run_dir, bench.export, precision, threads=settings.threads, plugins=plugins,
                        data_root=Path(spec.data_root) if spec.data_root else None, force=True)
        verification = report.manifest.verification
        manifest_path, passed = report.manifest_path, report.passed
        value = (verification.get("export") or {}).get(verification.get("primary_metric", spec.metric))
    module = load_runtime(manifest_path, settings.threads)
    return {"ms": time_module(module, loaded, settings, plugins), "value": value, "passed": passed, "manifest": str(manifest_path)}


def _eligible(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def usable(row: dict[str, Any]) -> bool:
        return bool(row["run_dir"]) and row["value"] is not None and (Path(row["run_dir"]) / "checkpoints" / "best.pt").is_file()

    done = [r for r in rows if r["state"] == "complete" and usable(r)]
    if done:
        return done
    # Nothing finished (a tiny time budget): trials stopped early still have a best checkpoint.
    return [r for r in rows if r["state"] in ("pruned", "stopped") and usable(r)]


def finalize(spec: SearchSpec, rows: list[dict[str, Any]], plugins: Any, say: Say) -> dict[str, Any]:
    """Measure, pick the finalists, export and time them, mark the front and the chosen trial.

    Returns:
        Facts for the leaderboard: ``formats``, ``deploy_format``, ``notes``, ``chosen`` (trial number or ``None``).
    """
    from visiontl import api
    from visiontl.train.precision import torch_threads

    settings = spec.settings
    better_first = spec.higher_is_better
    eligible = _eligible(rows)
    notes: list[str] = []
    if not eligible:
        return {"formats": [], "deploy_format": None, "notes": ["no trial finished with a checkpoint: nothing to measure"], "chosen": None}
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for row in eligible:
        groups.setdefault((row["model"], row["image_size"]), []).append(row)
    reps: list[dict[str, Any]] = []
    loaded_by_trial: dict[int, Any] = {}
    with torch_threads(settings.threads):
        for members in groups.values():
            rep = members[0]  # rows are sorted best first
            say(f"timing {rep['label']} (trial {rep['trial']}) in PyTorch eager")
            try:
                loaded = api.load_trained(rep["run_dir"], plugins)
                ms = time_module(loaded.model, loaded, settings, plugins)
            except Exception as exc:  # noqa: BLE001 - one model that cannot be timed must not lose the others
                rep["notes"].append(f"torch latency failed: {type(exc).__name__}: {exc}")
                continue
            loaded_by_trial[rep["trial"]] = loaded
            for row in members:
                row["torch_ms"] = ms
            reps.append(rep)
    if not reps:
        return {"formats": [], "deploy_format": None, "notes": ["no finished trial could be timed"], "chosen": None}
    flags = front([(r["value"], r["torch_ms"]) for r in reps], better_first)
    on_front = sorted((r for r, f in zip(reps, flags, strict=True) if f), key=lambda r: (-r["value"] if better_first else r["value"]))
    finalists = on_front[: settings.finalists]
    for row in finalists:
        row["finalist"] = True
    formats, format_notes = target_formats(spec)
    notes += format_notes
    with torch_threads(settings.threads):
        for row in finalists:
            loaded = loaded_by_trial[row["trial"]]
            for fmt in formats:
                if fmt == "torch":
                    row["latency_ms"]["torch"] = row["torch_ms"]
                    row["export_value"]["torch"] = row["value"]
                    continue
                say(f"exporting trial {row['trial']} as {fmt} and timing it")
                try:
                    got = export_and_time(Path(row["run_dir"]), fmt, loaded, spec, plugins)
                except Exception as exc:  # noqa: BLE001 - a format that fails is reported, the others kept
                    row["notes"].append(f"{fmt} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                    say(f"  {fmt}: failed ({type(exc).__name__})")
                    continue
                row["latency_ms"][fmt] = got["ms"]
                row["export_value"][fmt] = got["value"]
                if got["passed"] is False:
                    row["notes"].append(f"{fmt}: export verification failed (metric dropped beyond tolerance)")
                say(f"  {fmt}: {got['ms']:.2f} ms, {spec.metric} {_num(got['value'])}")
    deploy = next((f for f in formats if all(f in r["latency_ms"] for r in finalists)), None)
    if deploy is None:
        deploy = next((f for f in formats if any(f in r["latency_ms"] for r in finalists)), None)
    for row in finalists:
        if deploy is not None and deploy in row["latency_ms"]:
            row["deploy_format"], row["deploy_ms"], row["deploy_value"] = deploy, row["latency_ms"][deploy], row["export_value"].get(deploy)
        else:
            row["deploy_format"], row["deploy_ms"], row["deploy_value"] = "torch", row["torch_ms"], row["value"]
    final = front([(r["value"], r["deploy_ms"]) for r in finalists], better_first)
    for row, flag in zip(finalists, final, strict=True):
        row["pareto"] = flag
    chosen = choose(finalists, settings.max_latency_ms, better_first, notes)
    if chosen is not None:
        chosen["chosen"] = True
    return {"formats": formats, "deploy_format": deploy or "torch", "notes": notes, "chosen": chosen["trial"] if chosen else None}


def choose(finalists: list[dict[str, Any]], max_latency_ms: float | None, higher_is_better: bool, notes: list[str]) -> dict[str, Any] | None:
    """The best finalist (within ``max_latency_ms`` when given); ties go to the faster."""
    pool = finalists
    if max_latency_ms is not None:
        pool = [r for r in finalists if r["deploy_ms"] is not None and r["deploy_ms"] <= max_latency_ms]
        if not pool:
            notes.append(f"no finalist measured within {max_latency_ms:g} ms: the best one is chosen regardless")
            pool = finalists
    if not pool:
        return None
    return min(pool, key=lambda r: ((-r["value"] if higher_is_better else r["value"]), r["deploy_ms"] if r["deploy_ms"] is not None else math.inf))


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"
