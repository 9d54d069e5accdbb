"""``<run>/events.csv``: the run's timeline, one row per event and value (long format).

``metrics.csv`` (written by the core) is the wide table of epochs, rewritten whole after each
epoch. ``events.csv`` is what it lacks: wall-clock times, the phase boundaries with the
groups that train and their learning rates, and each phase's freeze audit, appended and
flushed as they happen (``tail -f`` works; a crash keeps everything up to the last event; a
resumed run appends). Columns::

    time, elapsed_s, event, phase_index, phase, epoch, name, value

``event`` is ``phase_start``, ``epoch_end`` or ``phase_end``; ``name``/``value`` carry one item
each (``trainable``, ``lr_head``, ``accuracy``, ``audit_ok`` ...). Load it with
``pandas.read_csv`` and pivot on ``name``.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl import hookimpl
from visiontl.contracts import PluginInfo
from visiontl_loggers.base import EventLogger, event, scalars, trainable_params

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.freeze.audit import AuditReport
    from visiontl.freeze.plan import Phase
    from visiontl.runs.layout import RunDir

FILE = "events.csv"
COLUMNS = ("time", "elapsed_s", "event", "phase_index", "phase", "epoch", "name", "value")


class CsvEventLogger(EventLogger):
    """Appends the run's events to ``<run>/events.csv``."""

    name = "events_csv"
    fix = "check that the run folder is writable"

    @hookimpl
    def visiontl_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            name="events_csv",
            families=(),
            tasks=(),
            description="timeline of phases, epochs and freeze audits to <run>/events.csv",
        )

    def _write(self, run: RunDir, kind: str, phase: Phase, epoch: int | str, items: list[tuple[str, Any]]) -> None:
        state = self.state(run)
        started = state.setdefault("started", time.monotonic())
        path = Path(run.path) / FILE
        new = not path.is_file() or path.stat().st_size == 0
        now = dt.datetime.now().astimezone().isoformat(timespec="milliseconds")
        elapsed = f"{time.monotonic() - started:.3f}"
        with path.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(COLUMNS)
            for name, value in items:
                writer.writerow([now, elapsed, kind, state.get("phase_index", ""), phase.name, epoch, name, _cell(value)])

    @hookimpl
    @event
    def visiontl_on_phase_start(self, run: RunDir, phase: Phase, index: int) -> None:
        self.state(run)["phase_index"] = index
        items: list[tuple[str, Any]] = [
            ("epochs", phase.epochs),
            ("trainable", " ".join(phase.trainable)),
            ("frozen", " ".join(phase.frozen)),
            ("trainable_params", trainable_params(phase)),
            ("bn", phase.bn),
            *((f"lr_{g}", phase.lrs[g]) for g in phase.trainable if g in phase.lrs),
        ]
        if phase.augmentation:
            items.append(("augmentation", phase.augmentation))
        self._write(run, "phase_start", phase, "", items)

    @hookimpl
    @event
    def visiontl_on_epoch_end(self, run: RunDir, phase: Phase, epoch: int, metrics: dict[str, Any]) -> None:
        self._write(run, "epoch_end", phase, epoch, list(scalars(metrics).items()))

    @hookimpl
    @event
    def visiontl_on_phase_end(self, run: RunDir, phase: Phase, index: int, audit: AuditReport) -> None:
        items: list[tuple[str, Any]] = [
            ("audit_ok", audit.ok),
            ("audit_params_checked", audit.params_checked),
            ("audit_buffers_checked", audit.buffers_checked),
            ("audit_changed", " ".join(audit.changed)),
        ]
        self._write(run, "phase_end", phase, "", items)


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.8g}"
    return value


plugin = CsvEventLogger()
