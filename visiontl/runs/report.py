"""summary.json and report.md: what a run did, in numbers and in words."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import platform
from pathlib import Path
from typing import Any

from visiontl.contracts import TrainJob, TrainResult
from visiontl.data.integrity import without_files
from visiontl.runs.layout import RunDir
from visiontl.tasks.base import count_of


def environment() -> dict[str, str]:
    """Versions of Python and the libraries that shape results."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("visiontl", "torch", "torchvision", "timm", "ultralytics", "segmentation-models-pytorch", "numpy", "pillow"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}


def build_summary(job: TrainJob, result: TrainResult, started: dt.datetime, finished: dt.datetime) -> dict[str, Any]:
    """The content of summary.json.

    Args:
        started: when the run first started (a resumed run's original start).
        finished: when training ended.
    """
    # files found unreadable during training leave the counts as well as joining the skipped
    info = without_files(job.data_info, result.skipped)
    skipped = info.skipped
    best_row = next((r for r in result.history if r.get("epoch") == result.best_epoch), {})
    return {
        "run_dir": str(job.run.path),
        "task": job.recipe.task,
        "model_id": str(job.built.model_id),
        "weights": job.built.weights.as_dict(),
        "strategy": job.plan.strategy,
        "phases": [{"name": p.name, "epochs": p.epochs, "trainable": list(p.trainable), "bn": p.bn} for p in job.plan.phases],
        "data": {
            "root": job.recipe.data.root,
            "classes": list(info.class_names),
            # what the names above are to the task (classes; a regression's targets)
            "label_kind": getattr(job.task, "label_kind", "classes"),
            "counts": info.counts,
            "images": {split: info.images(split) for split in info.counts},
            "skipped_count": len(skipped),
            "skipped": skipped,
            **({"details": info.extras["summary"]} if isinstance(info.extras.get("summary"), dict) else {}),
            # where the data came from (paths, file counts, hashes): eval warns when it changes
            "provenance": dict(getattr(info, "provenance", None) or {}),
        },
        "primary_metric": result.primary_metric,
        "best": {"epoch": result.best_epoch, result.primary_metric: result.best_metric, **_scalars(best_row)},
        "final": _scalars(result.final_metrics),
        "final_details": {k: v for k, v in result.final_metrics.items() if not isinstance(v, (int, float, str, bool))},
        "epochs_run": len(result.history),
        "timings_s": result.timings,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "environment": environment(),
        **result.extras,
    }


def test_split_lines(test: dict[str, Any], primary: str) -> list[str]:
    """The report's test section: what was scored, then every scalar metric."""
    from visiontl.scoring import describe

    scored = test.get("scored") or {}
    metrics = {k: v for k, v in test.items() if k not in ("scored", "details") and isinstance(v, (int, float)) and not isinstance(v, bool)}
    lines = ["## Test split (scored once, after training)", ""]
    if primary in metrics:
        lines += [f"Test {primary}: **{metrics[primary]:.4f}**", ""]
    lines += [f"- {line}" for line in describe(scored)] if scored else []
    lines += ["- the test split took no part in choosing the best epoch or in early stopping (validation did)", ""]
    lines += ["| metric | value |", "|---|---:|"] + [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    return [*lines, ""]


def write_report(run: RunDir, summary: dict[str, Any], task_lines: list[str], plots: list[Path], heading: str = "Per class (final epoch)") -> Path:
    """A short human-readable report.md.

    Args:
        task_lines: the task's own lines (``TaskAdapter.report_lines``), under ``heading``
            (``TaskAdapter.report_heading``).
    """
    primary = summary["primary_metric"]
    best = summary["best"]
    final = summary["final"]
    weights = summary["weights"]
    new_head = len(weights["reinitialised"])
    lines = [
        f"# {summary['model_id']} — {summary['task']}",
        "",
        f"- Run: `{summary['run_dir']}`",
        # A re-initialised head is counted once, as the new head (older summaries listed its
        # tensors under missing too).
        f"- Weights: {weights['source']} ({weights['loaded']} tensors loaded"
        + (f", new head ({new_head} tensors)" if new_head else "")
        + f", {len([k for k in weights['missing'] if k not in weights['reinitialised']])} missing)",
        f"- Strategy: {summary['strategy']} — " + ", ".join(f"{p['name']} ({p['epochs']} ep)" for p in summary["phases"]),
        f"- Best {primary} (validation): **{best[primary]:.4f}** at epoch {best['epoch']}; final {primary}: {final.get(primary, float('nan')):.4f}",
        f"- Data: {count_of(len(summary['data']['classes']), summary['data'].get('label_kind', 'classes'))}, "
        + ", ".join(f"{split} {n}" for split, n in summary["data"]["images"].items())
        + f" images; {summary['data']['skipped_count']} file(s) skipped",
        f"- Time: {summary['timings_s'].get('train_total', 0):.1f} s on {summary.get('device', '?')} ({summary.get('precision', '?')})",
        "",
    ]
    if summary.get("test"):
        lines += test_split_lines(summary["test"], primary)
    if summary.get("feature_cache"):
        lines += ["## Feature caching", ""] + [f"- {k}: {v}" for k, v in summary["feature_cache"].items()] + [""]
    if summary.get("audits"):
        lines += ["## Freeze audit", ""]
        for a in summary["audits"]:
            lines.append(f"- {a['phase']}: {a['params_checked']} frozen parameters and {a['buffers_checked']} BN buffers unchanged")
        lines.append("")
    if task_lines:
        lines += [f"## {heading}", "", *task_lines, ""]
    if summary.get("report_lines"):
        # Trainers with their own loop (Ultralytics) add what a reader should know.
        lines += ["## Trainer notes", "", *summary["report_lines"], ""]
    if summary["data"]["skipped"]:
        lines += ["## Skipped files", ""] + [f"- `{p}`: {r}" for p, r in list(summary["data"]["skipped"].items())[:50]] + [""]
    if plots:
        lines += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    return run.write_text("report.md", "\n".join(lines))
