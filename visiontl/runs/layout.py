"""The run directory: ``runs/<task>/<name>``, never overwritten.

Layout::

    recipe.yaml          the resolved recipe (every default filled in)
    plan.json, plan.txt  the phases, per group: parameters, trainable, lr, BN mode
    metrics.csv          one row per epoch
    summary.json         final and best metrics, timings, versions, weights, skipped files
    status.json          only after a failed or interrupted run: {"status": ..., "error": ...}
    checkpoints/         best.pt, last.pt (atomic writes)
    curves.png, confusion_matrix.png, report.md
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl.errors import ConfigError, RunError

#: Suffix of the temporary files of atomic writes: ``.<name>.<random>.tmp`` beside ``<name>``.
TEMP_SUFFIX = ".tmp"
# Temporary names: ours (``.best.pt.1a2b3c4d.tmp``) and those of older versions, which used
# ``tempfile.mkstemp`` (``.best.pt.k3j_9x2q``: 8 characters of [a-z0-9_], no suffix).
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
_LEGACY_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    The temporary file is ``.<name>.<8 hex digits>.tmp``; one left behind by a crash is
    removed by :meth:`RunDir.remove_temp_files`. It is created with mode ``0o666`` less the
    umask (``0644`` by default), like any file the user writes, not ``mkstemp``'s ``0600``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_run_name(name: str) -> str:
    """``name`` if it is one plain folder name, else a :class:`ConfigError`.

    ``output.name`` becomes ``<output.dir>/<task>/<name>``: a name with a path separator,
    ``..``, or an absolute path would write outside that folder.
    """
    seps = {"/", "\\", os.sep, *([os.altsep] if os.altsep else [])}
    bad = (
        not name.strip()
        or name in (".", "..")
        or any(sep in name for sep in seps)
        or Path(name).is_absolute()
        or bool(Path(name).drive)
        or "\0" in name
    )
    if bad:
        raise ConfigError(
            f"output.name '{name}' is not a plain folder name: runs are written to <output.dir>/<task>/<name>, "
            "and a name with '/', '\\', '..' or an absolute path would leave that folder.",
            fix="set output.name to a single folder name (letters, digits, '-', '_', '.'), and output.dir to choose where runs go",
        )
    return name

@dataclass
class RunDir:
    """One run's directory and the files in it."""

    path: Path
    #: When the run started (set by ``visiontl.api`` before training; a resumed run keeps the
    #: original time, which the training loop stores in its checkpoints).
    started: dt.datetime | None = field(default=None, compare=False)

    @classmethod
    def create(cls, base: Path, task: str, name: str) -> RunDir:
        """Make ``base/task/name`` (or ``name-2``, ``name-3`` ... if taken).

        Raises:
            ConfigError: ``name`` is not a plain folder name (see :func:`check_run_name`).
            RunError: 9,999 runs of that name exist already.
        """
        check_run_name(name)
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

    @property
    def status_json(self) -> Path:
        return self.path / "status.json"

    def has_checkpoint(self) -> bool:
        """Whether any checkpoint was written (the run has something worth keeping)."""
        return self.best.is_file() or self.last.is_file()

    def remove_temp_files(self) -> list[Path]:
        """Delete the temporary files of atomic writes that a crash left behind.

        Only files named like :func:`atomic_write_bytes`'s temporaries (or those of older
        versions, beside checkpoints) are removed. Returns the removed paths.
        """
        removed: list[Path] = []
        for tmp in sorted(self.path.rglob(f".*{TEMP_SUFFIX}")):
            if tmp.is_file() and _TEMP_NAME.match(tmp.name):
                tmp.unlink()
                removed.append(tmp)
        if self.checkpoints.is_dir():
            for tmp in sorted(self.checkpoints.glob(".*.pt.*")):
                if tmp.is_file() and _LEGACY_TEMP_NAME.match(tmp.name):
                    tmp.unlink()
                    removed.append(tmp)
        return removed

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
