"""A search budget: a number of trials, or wall-clock time (``20m``, ``1h30m``, ``90s``).

Plain parsing and formatting only (no optuna, no torch), so the CLI validates ``--budget``
before anything heavy is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from visiontl.errors import ConfigError

_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?:in)?)?(?:(?P<s>\d+(?:\.\d+)?)s)?$")


@dataclass(frozen=True)
class Budget:
    """How much a search may spend.

    Attributes:
        trials: trials to finish (complete or pruned), or ``None``.
        seconds: wall-clock seconds of training, or ``None``.
    """

    trials: int | None = None
    seconds: float | None = None

    def describe(self) -> str:
        if self.trials is not None:
            return f"{self.trials} trial{'s' if self.trials != 1 else ''}"
        assert self.seconds is not None
        return format_seconds(self.seconds)

    def as_text(self) -> str:
        """The form :func:`parse_budget` reads back."""
        if self.trials is not None:
            return str(self.trials)
        assert self.seconds is not None
        return f"{self.seconds:g}s"


def parse_budget(text: str | int) -> Budget:
    """``"12"`` -> 12 trials; ``"20m"``, ``"1h30m"``, ``"90s"`` -> seconds.

    Example:
        >>> parse_budget("20m")
        Budget(trials=None, seconds=1200.0)
        >>> parse_budget(8)
        Budget(trials=8, seconds=None)

    Raises:
        ConfigError: neither a positive integer nor a duration.
    """
    raw = str(text).strip().lower().replace(" ", "")
    if raw.isdigit():
        if int(raw) < 1:
            raise ConfigError(f"Budget '{text}' must be at least 1 trial.", fix="e.g. --budget 12 (trials) or --budget 20m")
        return Budget(trials=int(raw))
    match = _DURATION.match(raw)
    if raw and match and any(match.groupdict().values()):
        parts = {k: float(v) for k, v in match.groupdict().items() if v}
        seconds = parts.get("h", 0.0) * 3600 + parts.get("m", 0.0) * 60 + parts.get("s", 0.0)
        if seconds > 0:
            return Budget(seconds=seconds)
    raise ConfigError(
        f"Budget '{text}' is neither a number of trials nor a duration.",
        fix="give trials as an integer (--budget 12) or time as 90s, 20m, 1h30m",
    )


def format_seconds(seconds: float) -> str:
    """``750`` -> ``"12m30s"``; ``42`` -> ``"42s"``; ``3900`` -> ``"1h05m"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
