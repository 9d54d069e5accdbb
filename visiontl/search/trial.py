"""One trial: the sampled parameters turned into a recipe and trained as an ordinary run.

Shared by both backends. The run directory is a normal one (``runs/<task>/trial-NNNN``
under the search folder) plus ``search_trial.json``; a trial stopped early gets a
``status.json`` that says ``pruned`` (or ``stopped`` by the time budget) and how far it got.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl import log
from visiontl.search.reporter import (
    TRIAL_FILE,
    EpochCallback,
    EpochReporter,
    TrialStopped,
    planned_epochs,
    registered,
)
from visiontl.search.space import trial_recipe
from visiontl.search.spec import SearchSpec


@dataclass
class TrialOutcome:
    """How a trial ended.

    Attributes:
        state: ``complete``, ``pruned``, ``stopped`` (time budget) or ``failed``.
        value: the best validation metric (complete trials: the run's best epoch).
        run_dir: the run directory, when one was written.
        epochs: epochs trained.
        seconds: wall-clock seconds.
        error: why it failed.
        history: the per-epoch metric values.
    """

    state: str
    value: float | None = None
    run_dir: Path | None = None
    epochs: int = 0
    seconds: float = 0.0
    error: str | None = None
    history: list[float] = field(default_factory=list)


def trial_name(number: int) -> str:
    return f"trial-{number:04d}"


def threads_for(spec: SearchSpec) -> int | None:
    """torch threads per trial: the search's setting, else the base recipe's, else (several
    local workers) the cores shared out among them."""
    import os

    settings = spec.settings
    if settings.threads is not None:
        return settings.threads
    if (spec.base.get("train") or {}).get("threads") is not None:
        return None  # the base recipe's stays
    if settings.backend == "local" and settings.workers > 1:
        return max(1, (os.cpu_count() or 1) // settings.workers)
    return None


def recipe_for(spec: SearchSpec, number: int, params: dict[str, Any]) -> Any:
    """The validated recipe of trial ``number``."""
    from visiontl.config.loader import validate_recipe

    data = trial_recipe(spec.base, params, spec.space, spec.runs_dir, trial_name(number), threads_for(spec))
    return validate_recipe(data, f"(search trial {number})")


def history_of(run_dir: Path, metric: str) -> list[float]:
    """The per-epoch values of ``metric`` in a run's ``metrics.csv``."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [float(row[metric]) for row in csv.DictReader(fh) if row.get(metric) not in (None, "")]


def run_trial(spec: SearchSpec, number: int, params: dict[str, Any], on_epoch: EpochCallback, *, plugins: Any = None,
              resume_run: Path | None = None, replay: EpochCallback | None = None,
              on_start: Any = None) -> TrialOutcome:
    """Train one trial and say how it ended (never raises for a failed trial; Ctrl-C passes).

    Args:
        spec: the search.
        number: the trial's number (names its run directory).
        params: its sampled parameters.
        on_epoch: called after every epoch with ``(epoch, value, best so far, epochs planned)``; raises
            :class:`TrialStopped` to stop the trial.
        plugins: the plugin manager (default: the process-wide one).
        resume_run: continue this interrupted run directory instead of starting a new one.
        replay: called for each epoch the interrupted run already trained (reports them).
        on_start: called with the run directory as soon as it is created.
    """
    from visiontl import api
    from visiontl.errors import VisiontlError
    from visiontl.plugin_manager import get_plugins
    from visiontl.runs.layout import RunDir

    plugins = plugins or get_plugins()
    data_root = Path(spec.data_root) if spec.data_root else None
    marker = {"search": str(spec.out), "study": spec.study_name, "trial": number, "params": params, "metric": spec.metric}
    reporter = EpochReporter(spec.metric, spec.higher_is_better, on_epoch, marker, on_start)
    started = time.perf_counter()
    try:
        with registered(plugins, reporter):
            if resume_run is not None:
                planned = planned_epochs(resume_run, spec.space.epochs)
                for epoch, value in enumerate(history_of(resume_run, spec.metric), 1):
                    best = reporter.seen(value)
                    if replay is not None:
                        replay(epoch, value, best, planned)
                marker["resumes"] = str(resume_run)
                marker["previous_trials"] = _previous_trials(resume_run)
                outcome = api.resume(resume_run, plugins=plugins, data_root=data_root)
            else:
                outcome = api.run(recipe_for(spec, number, params), plugins=plugins, data_root=data_root)
    except TrialStopped as stop:
        seconds = time.perf_counter() - started
        state = "pruned" if stop.reason == "pruned" else "stopped"
        if reporter.run_path is not None:
            _mark_stopped(RunDir(reporter.run_path), state, stop, reporter, spec)
        return TrialOutcome(state, reporter.best, reporter.run_path, stop.epoch, seconds, history=_values(reporter, spec))
    except VisiontlError as exc:
        return _failed(exc, reporter, started, spec)
    except Exception as exc:  # noqa: BLE001 - one trial's bug must not end the search; it is recorded
        log.warning(f"search trial {number} raised {type(exc).__name__}: {exc}")
        return _failed(exc, reporter, started, spec)
    value = float(outcome.result.best_metric)
    seconds = time.perf_counter() - started
    history = _values(reporter, spec)
    if math.isnan(value):
        return TrialOutcome("failed", None, outcome.run_dir, len(history), seconds, "the validation metric is NaN", history)
    return TrialOutcome("complete", value, outcome.run_dir, len(outcome.result.history), seconds, history=history)


def _previous_trials(run_dir: Path) -> list[int]:
    """The trial numbers an interrupted run was trained for before."""
    import json

    try:
        old = json.loads((Path(run_dir) / TRIAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    numbers = [old.get("trial"), *old.get("previous_trials", [])]
    return [n for n in numbers if isinstance(n, int)]


def _values(reporter: EpochReporter, spec: SearchSpec) -> list[float]:
    return history_of(reporter.run_path, spec.metric) if reporter.run_path is not None else []


def _failed(exc: BaseException, reporter: EpochReporter, started: float, spec: SearchSpec) -> TrialOutcome:
    text = f"{type(exc).__name__}: {exc}"
    return TrialOutcome("failed", None, reporter.run_path, reporter.epochs, time.perf_counter() - started, text, _values(reporter, spec))


def _mark_stopped(run: Any, state: str, stop: TrialStopped, reporter: EpochReporter, spec: SearchSpec) -> None:
    """Replace the generic 'failed' status the API wrote with what really happened."""
    import datetime as dt

    why = "the pruner stopped it: its validation metric was behind other trials' at the same epoch" if state == "pruned" \
        else "the search's time budget was spent"
    status = {
        "status": state, "reason": why, "epochs_trained": stop.epoch, "epochs_planned": reporter.planned or spec.space.epochs,
        f"best_{spec.metric}": reporter.best, "search": str(spec.out), "trial": reporter.marker.get("trial"),
        "time": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    if run.last.is_file():
        status["resume"] = f"visiontl run --resume {run.path}"
    run.write_json("status.json", status)


def mark_run(run_dir: Path, state: str, reason: str, epochs: int, spec: SearchSpec) -> None:
    """Write ``status.json`` for a run stopped outside this process (a Ray trial stopped by
    its scheduler), unless the run finished."""
    import datetime as dt

    from visiontl.runs.layout import RunDir

    run = RunDir(Path(run_dir))
    if not run.path.is_dir() or run.summary_json.is_file():
        return
    status = {"status": state, "reason": reason, "epochs_trained": epochs,
              "epochs_planned": planned_epochs(run.path, spec.space.epochs),
              "search": str(spec.out), "time": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    if run.last.is_file():
        status["resume"] = f"visiontl run --resume {run.path}"
    run.write_json("status.json", status)


def trial_runs(spec: SearchSpec) -> dict[int, Path]:
    """Trial number -> run directory, from the ``search_trial.json`` files under the search
    (a resumed run answers for the trial that finished it)."""
    import json

    out: dict[int, Path] = {}
    for marker in sorted(spec.runs_dir.glob(f"*/*/{TRIAL_FILE}")):
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for number in [data.get("trial"), *data.get("previous_trials", [])]:
            if isinstance(number, int):
                out.setdefault(number, marker.parent)
    return out
