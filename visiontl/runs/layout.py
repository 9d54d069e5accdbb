"""The run directory: ``runs/<task>/<name>``, never overwritten.

Layout::

    recipe.yaml          the resolved recipe (every default filled in)
    plan.json, plan.txt  the phases, per group: parameters, trainable, lr, BN mode
    metrics.csv          one row per epoch
    summary.json         final and best metrics, timings, versions, weights, skipped files
    checkpoints/         best.pt, last.pt (atomic writes)
    curves.png, confusion_matrix.png, report.md
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visiontl.errors import RunError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@dataclass
class RunDir:
    """One run's directory and the files in it."""

    path: Path

    @classmethod
    def create(cls, base: Path, task: str, name: str) -> RunDir:
        """Make ``base/task/name`` (or ``name-2``, ``name-3`` ... if taken)."""
        parent = base / task
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            candidate = parent / (name if n == 1 else f"{name}-{n}")
            try:
                candidate.mkdir()  # atomic: two runs never get the same directory
            except FileExistsError:
                continue
            (candidate / "checkpoints").mkdir()
            return cls(candidate)
        raise RunError(f"Too many runs named '{name}' in {parent}.", fix="set output.name")

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run directory (for resume, predict, eval)."""
        if not (path / "recipe.yaml").is_file():
            raise RunError(
                f"'{path}' is not a visiontl run directory (no recipe.yaml).",
                fix="pass a directory created by 'visiontl run', e.g. runs/classification/<name>",
            )
        return cls(path)

    # ------------------------------------------------------------------ paths
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def summary_json(self) -> Path:
        return self.path / "summary.json"

    # ------------------------------------------------------------------ writers
    def write_json(self, name: str, obj: Any) -> Path:
        path = self.path / name
        atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        atomic_write_text(path, text)
        return path

    def write_metrics(self, history: Sequence[dict[str, Any]]) -> Path:
        """Rewrite ``metrics.csv`` from the scalar columns of every epoch so far."""
        columns: list[str] = []
        for row in history:
            for key, value in row.items():
                if key not in columns and (value is None or isinstance(value, (int, float, str))):
                    columns.append(key)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: _fmt(row.get(k)) for k in columns})
        atomic_write_text(self.metrics_csv, buf.getvalue())
        return self.metrics_csv


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value
