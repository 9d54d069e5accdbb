"""What every logger plugin shares: per-run state, the rank-0 guard, the failure policy."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from visiontl import log
from visiontl.errors import PluginError

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.freeze.plan import Phase
    from visiontl.runs.layout import RunDir

STRICT_ENV = "VISIONTL_STRICT_LOGGERS"

F = TypeVar("F", bound=Callable[..., None])


def strict() -> bool:
    """Whether a logger failure must stop the run (``VISIONTL_STRICT_LOGGERS=1``)."""
    return os.environ.get(STRICT_ENV, "").strip() not in ("", "0")


def is_main_process() -> bool:
    """Rank 0, or no distributed launch at all.

    The shared loop fires events on rank 0 only; this guard keeps a logger from writing twice
    when another trainer fires events on every rank.
    """
    return os.environ.get("RANK", "0").strip() in ("", "0")


class EventLogger:
    """Base of a logger plugin: hook methods wrapped with :func:`event` get the rank guard and
    the failure policy; ``state(run)`` keeps whatever the logger needs per run directory.

    Attributes:
        name: the plugin's entry-point name (for messages and ``VISIONTL_DISABLE_PLUGINS``).
        fix: what a user can do when the logger fails.
    """

    name = "logger"
    fix = ""

    def __init__(self) -> None:
        self._states: dict[Path, dict[str, Any]] = {}
        self._failed: set[Path] = set()

    def state(self, run: RunDir) -> dict[str, Any]:
        """Mutable per-run state (one dict per run directory)."""
        return self._states.setdefault(Path(run.path), {})

    def forget(self, run: RunDir) -> None:
        """Drop a run's state (after its files are closed)."""
        self._states.pop(Path(run.path), None)

    def release(self, state: dict[str, Any]) -> None:
        """Close what a run's state holds (files, remote runs) after a failure. Default: nothing."""

    def failed(self, run: RunDir) -> bool:
        return Path(run.path) in self._failed

    def _fail(self, run: RunDir, where: str, exc: Exception) -> None:
        message = f"logger '{self.name}' failed in {where}: {type(exc).__name__}: {exc}"
        if strict():
            raise PluginError(message + ".", fix=f"{self.fix}; or unset {STRICT_ENV} to go on without this logger") from exc
        self._failed.add(Path(run.path))
        state = self._states.pop(Path(run.path), None)
        if state:
            try:
                self.release(state)
            except Exception:  # noqa: BLE001 - already failing: the first error is the one to report
                pass
        log.warning(
            f"{message}. It is off for the rest of this run; training, checkpoints and metrics.csv are unaffected. "
            f"Fix: {self.fix}; or turn it off with VISIONTL_DISABLE_PLUGINS={self.name}"
        )


def event(method: F) -> F:
    """Wrap an event-hook method of an :class:`EventLogger`: skip on ranks other than 0 and
    after this logger failed for the run; report a failure instead of raising (unless strict)."""

    @functools.wraps(method)
    def wrapper(self: EventLogger, run: RunDir, *args: Any, **kwargs: Any) -> None:
        if not is_main_process() or self.failed(run):
            return
        try:
            method(self, run, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the policy above decides, see _fail
            self._fail(run, method.__name__, exc)

    return wrapper  # type: ignore[return-value]


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of an epoch row (booleans and the epoch counters left out)."""
    skip = {"epoch", "phase_epoch"}
    return {
        key: float(value)
        for key, value in metrics.items()
        if key not in skip and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def trainable_params(phase: Phase) -> int:
    """Parameters that train in ``phase`` (0 when the plan carries no per-group settings)."""
    return sum(s.params for s in phase.settings if s.trainable)


def describe_phase(phase: Phase, index: int) -> str:
    """One line: which groups train, at which learning rates, with which BatchNorm policy."""
    lrs = ", ".join(f"{g}={phase.lrs[g]:.2g}" for g in phase.trainable if g in phase.lrs)
    frozen = ", ".join(phase.frozen) or "none"
    total = sum(s.params for s in phase.settings)
    share = f" ({trainable_params(phase):,} of {total:,} parameters)" if total else ""
    return (
        f"phase {index + 1} '{phase.name}': {phase.epochs} epoch(s); trains {', '.join(phase.trainable)}{share}; "
        f"frozen: {frozen}; lr {lrs}; BN policy '{phase.bn}'"
    )
