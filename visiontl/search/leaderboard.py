"""The leaderboard: one row per trial, from the study and the trials' run directories.

Written as ``leaderboard.json`` (with the search's conditions), ``leaderboard.csv`` and a
printed table. Complete trials come first, best first; then trials stopped early (by their
best value so far), then failed ones with their error.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from visiontl.search.space import describe_params
from visiontl.search.spec import SearchSpec
from visiontl.search.trial import history_of, trial_runs

#: Order of states in the table.
STATE_ORDER = {"complete": 0, "pruned": 1, "stopped": 1, "running": 2, "interrupted": 3, "failed": 4}
CSV_COLUMNS = ("rank", "trial", "state", "value", "model", "strategy", "lr", "lr_spread", "image_size", "augmentation", "epochs",
               "seconds", "torch_ms", "deploy_format", "deploy_ms", "deploy_value", "pareto", "finalist", "chosen", "run_dir", "error")


def _state(trial: Any) -> str | None:
    from visiontl.search.study import states

    ts = states()
    if trial.state == ts.COMPLETE:
        return "complete"
    if trial.state == ts.PRUNED:
        return "stopped" if trial.user_attrs.get("stop_reason") == "budget" else "pruned"
    if trial.state == ts.FAIL:
        return "interrupted" if trial.user_attrs.get("interrupted") else "failed"
    if trial.state == ts.RUNNING:
        return "running"
    return None  # waiting (queued, not started)


def collect(spec: SearchSpec, study: Any) -> list[dict[str, Any]]:
    """The rows of every started trial, sorted (see the module docstring)."""
    runs = trial_runs(spec)
    rows: list[dict[str, Any]] = []
    for trial in study.get_trials(deepcopy=False):
        state = _state(trial)
        if state is None:
            continue
        run = trial.user_attrs.get("run_dir") or (str(runs[trial.number]) if trial.number in runs else None)
        values = [v for _, v in sorted(trial.intermediate_values.items()) if v is not None and not math.isnan(v)]
        if state == "complete":
            value = trial.value
        elif values:
            value = max(values) if spec.higher_is_better else min(values)
        else:
            value = None
        epochs = trial.user_attrs.get("epochs")
        if epochs is None:
            epochs = len(history_of(Path(run), spec.metric)) if run else len(values)
        params = dict(trial.params)
        seconds = trial.user_attrs.get("seconds")
        if seconds is None and trial.datetime_start and trial.datetime_complete:
            seconds = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 2)
        rows.append({
            "trial": trial.number, "state": state, "value": value, "metric": spec.metric,
            "model": params.get("model"), "strategy": params.get("strategy"), "lr": params.get("lr"),
            "lr_spread": params.get("lr_spread"), "image_size": params.get("image_size"), "augmentation": params.get("augmentation"),
            "params": params, "label": describe_params(params, spec.space) if params else "", "epochs": epochs, "seconds": seconds,
            "run_dir": run, "error": trial.user_attrs.get("error"), "resumes_trial": trial.user_attrs.get("resumes_trial"),
            "torch_ms": None, "latency_ms": {}, "export_value": {}, "deploy_format": None, "deploy_ms": None, "deploy_value": None,
            "pareto": False, "finalist": False, "chosen": False, "notes": [],
        })
    return sort_rows(rows, spec.higher_is_better)


def sort_rows(rows: list[dict[str, Any]], higher_is_better: bool) -> list[dict[str, Any]]:
    def key(row: dict[str, Any]) -> tuple[int, float, int]:
        value = row["value"]
        score = -value if (value is not None and higher_is_better) else (value if value is not None else math.inf)
        return STATE_ORDER.get(row["state"], 9), score, row["trial"]

    rows = sorted(rows, key=key)
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def _fmt(value: Any, spec: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def table(rows: list[dict[str, Any]], metric: str) -> str:
    """The printed leaderboard (``*`` Pareto front, ``F`` finalist, ``>`` the chosen trial)."""
    from visiontl.cli.options import table as text_table

    lines = []
    for row in rows:
        mark = (">" if row["chosen"] else " ") + ("*" if row["pareto"] else ("F" if row["finalist"] else " "))
        deploy = f"{_fmt(row['deploy_ms'], '.2f')} ({row['deploy_format']})" if row["deploy_format"] else "-"
        lines.append([f"{row['rank']}{mark}", str(row["trial"]), row["state"], _fmt(row["value"]), row["label"] or "-",
                      str(row["epochs"] if row["epochs"] is not None else "-"), _fmt(row["seconds"], ".0f"),
                      _fmt(row["torch_ms"], ".2f"), deploy, _fmt(row["deploy_value"])])
    header = ["#", "trial", "state", metric, "settings", "epochs", "s", "torch ms", "deploy ms", f"deploy {metric}"]
    return text_table(lines, header)


def write(spec: SearchSpec, rows: list[dict[str, Any]], extra: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``leaderboard.json`` and ``leaderboard.csv`` in the search folder."""
    from visiontl.runs.layout import atomic_write_text

    data = {"search": str(spec.out), "task": spec.task, "metric": spec.metric, "direction": spec.direction,
            "target": spec.settings.target, "budget": spec.settings.budget, **extra, "trials": rows}
    json_path = spec.out / "leaderboard.json"
    atomic_write_text(json_path, json.dumps(data, indent=2, default=str) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    csv_path = spec.out / "leaderboard.csv"
    atomic_write_text(csv_path, buf.getvalue())
    return json_path, csv_path
