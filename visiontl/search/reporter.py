"""The per-epoch feed from a trial's run to the search, as an ordinary event plugin.

An :class:`EpochReporter` is registered on the plugin manager for one trial's duration. It
hears ``visiontl_on_run_start`` (it marks the run directory as a search trial) and
``visiontl_on_epoch_end`` (it hands the epoch's validation metric to the search, which
reports it to Optuna or Ray Tune). To stop a trial (pruned, or the time budget spent) the
search raises :class:`TrialStopped` from that callback: the training loop has saved its
checkpoints for the epoch just before the event, so the stopped run directory is consistent
and ``eval``, ``export`` and ``benchmark`` work on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from visiontl.errors import ConfigError
from visiontl.hookspecs import hookimpl

#: The file that marks a run directory as a trial of a search.
TRIAL_FILE = "search_trial.json"


class TrialStopped(Exception):  # noqa: N818 - a signal, not an error
    """Raised from the epoch callback to stop a trial early.

    Attributes:
        reason: ``pruned`` (the pruner's decision) or ``budget`` (the time budget is spent).
        epoch: the last epoch trained.
    """

    def __init__(self, reason: str, epoch: int) -> None:
        super().__init__(f"trial stopped after epoch {epoch}: {reason}")
        self.reason = reason
        self.epoch = epoch


#: ``(epoch, value, best so far, epochs planned)``.
EpochCallback = Callable[[int, float, float, int], None]


def planned_epochs(run_dir: Path, default: int) -> int:
    """The epochs a run's plan holds (its ``plan.json``: the phases' epochs summed)."""
    import json

    try:
        plan = json.loads((Path(run_dir) / "plan.json").read_text(encoding="utf-8"))
        return int(sum(int(p["epochs"]) for p in plan["phases"]))
    except (OSError, ValueError, KeyError, TypeError):
        return default


class EpochReporter:
    """Feeds one trial's per-epoch metric to ``on_epoch(epoch, value, best_so_far, planned)``.

    Args:
        metric: the metric key in the epoch's row.
        higher_is_better: its direction.
        on_epoch: the search's callback (may raise :class:`TrialStopped`).
        marker: what to write into the run's ``search_trial.json``.
        on_start: called with the run directory as soon as it exists (the search records it
            at once, so that a killed trial's run can be found and continued).
    """

    def __init__(self, metric: str, higher_is_better: bool, on_epoch: EpochCallback, marker: dict[str, Any],
                 on_start: Callable[[Path], None] | None = None) -> None:
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.on_epoch = on_epoch
        self.marker = marker
        self.on_start = on_start
        self.run_path: Path | None = None
        self.best: float | None = None
        self.epochs = 0
        self.planned = 0

    def seen(self, value: float) -> float:
        """Record a value; return the best so far (NaN never wins)."""
        if not math.isnan(value) and (self.best is None or (value > self.best if self.higher_is_better else value < self.best)):
            self.best = value
        return self.best if self.best is not None else value

    @hookimpl
    def visiontl_on_run_start(self, run: Any, recipe: Any) -> None:
        if self.run_path is not None:
            return
        self.run_path = Path(run.path)
        self.planned = planned_epochs(self.run_path, 0)  # plan.json is written before this event
        run.write_json(TRIAL_FILE, self.marker)
        if self.on_start is not None:
            self.on_start(self.run_path)

    @hookimpl
    def visiontl_on_epoch_end(self, run: Any, phase: Any, epoch: int, metrics: dict[str, Any]) -> None:
        if self.run_path is None or Path(run.path) != self.run_path:
            return  # another run in this process (none today; cheap to be sure)
        if self.metric not in metrics:
            scalars = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
            raise ConfigError(f"The search ranks trials by '{self.metric}', which the epoch's metrics do not have.",
                              fix=f"set eval.metric in the base recipe to one of: {', '.join(scalars)}")
        value = float(metrics[self.metric])
        self.epochs = epoch
        self.on_epoch(epoch, value, self.seen(value), self.planned or epoch)


@contextmanager
def registered(plugins: Any, reporter: EpochReporter) -> Iterator[EpochReporter]:
    """Register ``reporter`` on ``plugins`` for the ``with`` block only."""
    name = f"visiontl-search-trial-{id(reporter)}"
    plugins.pm.register(reporter, name=name)
    try:
        yield reporter
    finally:
        plugins.pm.unregister(reporter)
