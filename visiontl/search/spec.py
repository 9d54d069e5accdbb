"""A search's specification, stored as ``search.json`` in its folder.

Everything a worker needs to run trials of the search (task, metric and direction, the base
recipe, the settings, the space, where the study is stored) is here, so a worker process, a
Ray trial or ``visiontl search --resume DIR`` rebuilds the exact same search from the file.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl.errors import ConfigError
from visiontl.search.budget import Budget, parse_budget
from visiontl.search.section import SearchSection
from visiontl.search.space import SearchSpace

SPEC_FILE = "search.json"
STUDY_FILE = "study.db"
FORMAT_VERSION = 1


@dataclass
class SearchSpec:
    """One search.

    Attributes:
        task: the task name.
        metric: the validation metric that ranks trials (the task's primary metric or ``eval.metric``).
        higher_is_better: the metric's direction (from the task adapter).
        base: the base recipe dict every trial starts from.
        section: the search settings (:class:`SearchSection` fields).
        space: the sampled space.
        out: the search folder.
        storage: the Optuna storage URL.
        study_name: the Optuna study name.
        data_root: root of relative data paths (``None``: ``$VISIONTL_DATA_DIR`` or ``./data``).
        created: when the search was created (ISO 8601).
        command: the command line that created it, for the record.
    """

    task: str
    metric: str
    higher_is_better: bool
    base: dict[str, Any]
    section: dict[str, Any]
    space: SearchSpace
    out: Path
    storage: str
    study_name: str
    data_root: str | None = None
    created: str = field(default_factory=lambda: dt.datetime.now().astimezone().isoformat(timespec="seconds"))
    command: list[str] = field(default_factory=list)

    @property
    def settings(self) -> SearchSection:
        return SearchSection.model_validate(self.section)

    @property
    def budget(self) -> Budget:
        return parse_budget(self.section["budget"])

    @property
    def direction(self) -> str:
        return "maximize" if self.higher_is_better else "minimize"

    @property
    def runs_dir(self) -> Path:
        """Where the trials' run directories go (``<runs_dir>/<task>/trial-NNNN``)."""
        return self.out / "runs"

    def better(self, a: float, b: float) -> bool:
        """Whether metric value ``a`` beats ``b``."""
        return a > b if self.higher_is_better else a < b

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION, "task": self.task, "metric": self.metric, "higher_is_better": self.higher_is_better,
            "base": self.base, "section": self.section, "space": self.space.as_dict(), "out": str(self.out),
            "storage": self.storage, "study_name": self.study_name, "data_root": self.data_root,
            "created": self.created, "command": list(self.command),
        }

    def save(self) -> Path:
        from visiontl.runs.layout import atomic_write_text

        path = self.out / SPEC_FILE
        atomic_write_text(path, json.dumps(self.as_dict(), indent=2, default=str) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpec:
        return cls(
            task=data["task"], metric=data["metric"], higher_is_better=bool(data["higher_is_better"]), base=data["base"],
            section=data["section"], space=SearchSpace.from_dict(data["space"]), out=Path(data["out"]), storage=data["storage"],
            study_name=data["study_name"], data_root=data.get("data_root"), created=data.get("created", ""),
            command=list(data.get("command") or []),
        )

    @classmethod
    def load(cls, folder: Path) -> SearchSpec:
        """The search stored in ``folder`` (its ``out`` updated if the folder moved).

        Raises:
            ConfigError: ``folder`` holds no search.
        """
        path = Path(folder) / SPEC_FILE
        if not path.is_file():
            raise ConfigError(f"'{folder}' is not a search folder (no {SPEC_FILE}).",
                              fix="pass the folder a previous 'visiontl search' wrote (it prints it first)")
        spec = cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        moved = Path(folder).resolve()
        if spec.out.resolve() != moved:
            default = f"sqlite:///{spec.out.resolve() / STUDY_FILE}"
            if spec.storage == default:
                spec.storage = f"sqlite:///{moved / STUDY_FILE}"
            spec.out = moved
        return spec


def default_storage(out: Path) -> str:
    """The SQLite study file inside the search folder."""
    return f"sqlite:///{Path(out).resolve() / STUDY_FILE}"
