"""Deployment targets: budgets, size limits, precision, export, and how latency is predicted."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from visiontl.errors import ConfigError
from visiontl.ids import suggest
from visiontl.selection.latency import LatencyModel

TARGETS_FILE = Path(__file__).resolve().parent / "targets.yaml"


@dataclass(frozen=True)
class Target:
    """One deployment target.

    Attributes:
        name: ``edge``, ``mobile``, ``server``, ``cloud``, ``local`` or a user's own.
        description: what hardware it stands for.
        latency_budget_ms: batch-1 budget per task (``default`` covers the rest).
        max_size_mb: largest fp32 model file.
        precision: deployment precision (``fp32``, ``fp16``, ``int8``).
        export: preferred export formats.
        latency_model: how latency is predicted (``fit``, ``derived_from`` + ``factor``, or
            ``calibration``).
        priority: the default ranking priority on this target.
    """

    name: str
    description: str
    latency_budget_ms: dict[str, float]
    max_size_mb: float
    precision: str
    export: tuple[str, ...]
    latency_model: dict[str, Any] = field(default_factory=dict)
    priority: str = "balanced"

    def budget(self, task: str) -> float:
        budgets = self.latency_budget_ms
        return float(budgets.get(task, budgets.get("default", max(budgets.values()))))


def load_targets(extra: Path | None = None) -> dict[str, Target]:
    """Built-in targets, plus (or overridden by) those in ``extra``."""
    raw: dict[str, Any] = yaml.safe_load(TARGETS_FILE.read_text(encoding="utf-8"))
    if extra is not None:
        if not extra.is_file():
            raise ConfigError(f"Targets file '{extra}' does not exist.")
        raw.update(yaml.safe_load(extra.read_text(encoding="utf-8")) or {})
    out = {}
    for name, spec in raw.items():
        try:
            out[name] = Target(
                name=name,
                description=str(spec.get("description", "")),
                latency_budget_ms={k: float(v) for k, v in dict(spec["latency_budget_ms"]).items()},
                max_size_mb=float(spec.get("max_size_mb", 1e9)),
                precision=str(spec.get("precision", "fp32")),
                export=tuple(spec.get("export", ())),
                latency_model=dict(spec.get("latency_model", {})),
                priority=str(spec.get("priority", "balanced")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"Target '{name}' is malformed: {exc}.", fix="see visiontl/selection/targets.yaml for the format") from None
    return out


def get_target(name: str, extra: Path | None = None) -> Target:
    targets = load_targets(extra)
    if name in targets:
        return targets[name]
    close = suggest(name, targets, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"Unknown target '{name}'.{hint}", fix=f"use one of: {', '.join(targets)}")


def latency_model(target: Target) -> LatencyModel | None:
    """The latency model of a target, or ``None`` when none can be had (no calibration yet)."""
    from visiontl.selection.calibrate import load_calibration
    from visiontl.selection.fit import load_fits

    spec = target.latency_model
    fits = load_fits()
    if "fit" in spec:
        model = fits.get(spec["fit"])
        return model
    if "derived_from" in spec:
        base = fits.get(spec["derived_from"])
        if base is None:
            return None
        factor = float(spec.get("factor", 1.0))
        return base.scaled(factor, f"{base.name} fit x{factor:g} ({spec.get('why', 'assumed')})")
    if "calibration" in spec:
        return load_calibration()
    return None
