"""MLflow: the recipe as params, every epoch's scalars as metrics, the run's files as artifacts.

Active when ``mlflow`` is installed (``visiontl plugins`` shows it as missing otherwise). Where
runs go is MLflow's own business: ``MLFLOW_TRACKING_URI`` (default ``./mlruns``) and
``MLFLOW_EXPERIMENT_NAME`` (default here: ``visiontl``). A run already active in the process
(``with mlflow.start_run(): visiontl.run(...)``) is logged into and left open; otherwise one
MLflow run per visiontl run, named after its directory, ended after each phase and resumed by
id at the next (there is no end-of-run event to wait for). ``visiontl resume`` in a new
process starts a new MLflow run: the id is not stored in the run directory.

* params: the resolved recipe (``recipe.yaml``), flattened to dotted keys;
* tags: ``visiontl.run_dir``, ``visiontl.task``, ``visiontl.model``, one ``visiontl.phaseN`` each;
* metrics: every numeric entry of each epoch's row, at step = global epoch, plus
  ``phase_index`` and, per phase, ``audit_ok``;
* artifacts, after each phase: ``recipe.yaml``, ``plan.json``, ``plan.txt``, ``metrics.csv``
  and ``events.csv`` when present (checkpoints are left out: they can be large).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl import hookimpl
from visiontl.contracts import PluginInfo
from visiontl_loggers.base import EventLogger, describe_phase, event, scalars

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.freeze.audit import AuditReport
    from visiontl.freeze.plan import Phase
    from visiontl.runs.layout import RunDir

EXPERIMENT = "visiontl"
ARTIFACTS = ("recipe.yaml", "plan.json", "plan.txt", "metrics.csv", "events.csv")
#: MLflow stores at most 500 characters per param value in older servers, 100 params a call.
MAX_PARAM_CHARS = 500
PARAMS_PER_CALL = 100


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; lists and nulls as JSON, long values cut."""
    out: dict[str, str] = {}
    if isinstance(data, dict) and data:
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    text = data if isinstance(data, str) else json.dumps(data)
    out[prefix.rstrip(".")] = text[:MAX_PARAM_CHARS]
    return out


def metric_name(key: str) -> str:
    """MLflow accepts letters, digits, ``_-./`` and spaces in metric names."""
    return re.sub(r"[^\w\-./ ]", "_", key)


class MlflowLogger(EventLogger):
    """Logs each visiontl run to MLflow."""

    name = "mlflow"
    fix = "check MLFLOW_TRACKING_URI and that the tracking server is reachable"

    @hookimpl
    def visiontl_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            name="mlflow",
            families=(),
            tasks=(),
            requires=("mlflow",),
            install_hint="pip install mlflow",
            description="recipe params, per-epoch metrics and run files to MLflow",
        )

    def release(self, state: dict[str, Any]) -> None:
        if state.get("owned"):
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.end_run(status="FAILED")

    def _start(self, run: RunDir) -> Any:
        import mlflow

        state = self.state(run)
        if "run_id" not in state:
            active = mlflow.active_run()
            if active is not None:
                state.update(run_id=active.info.run_id, owned=False)
            else:
                if not (os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_ID")):
                    mlflow.set_experiment(EXPERIMENT)
                started = mlflow.start_run(run_name=Path(run.path).name)
                state.update(run_id=started.info.run_id, owned=True)
            self._describe(mlflow, run)
        elif state["owned"] and mlflow.active_run() is None:
            mlflow.start_run(run_id=state["run_id"])
        return mlflow

    def _describe(self, mlflow: Any, run: RunDir) -> None:
        import yaml

        recipe_file = Path(run.path) / "recipe.yaml"
        recipe = yaml.safe_load(recipe_file.read_text(encoding="utf-8")) if recipe_file.is_file() else {}
        params = flatten(recipe or {})
        items = sorted(params.items())
        for start in range(0, len(items), PARAMS_PER_CALL):
            mlflow.log_params(dict(items[start:start + PARAMS_PER_CALL]))
        tags = {"visiontl.run_dir": str(run.path)}
        if recipe:
            tags["visiontl.task"] = str(recipe.get("task", ""))
            tags["visiontl.model"] = str((recipe.get("model") or {}).get("id", ""))
        mlflow.set_tags(tags)

    @hookimpl
    @event
    def visiontl_on_phase_start(self, run: RunDir, phase: Phase, index: int) -> None:
        mlflow = self._start(run)
        self.state(run)["phase_index"] = index
        mlflow.set_tag(f"visiontl.phase{index + 1}", describe_phase(phase, index))

    @hookimpl
    @event
    def visiontl_on_epoch_end(self, run: RunDir, phase: Phase, epoch: int, metrics: dict[str, Any]) -> None:
        mlflow = self._start(run)
        values = {metric_name(k): v for k, v in scalars(metrics).items()}
        values["phase_index"] = float(self.state(run).get("phase_index", 0))
        mlflow.log_metrics(values, step=epoch)

    @hookimpl
    @event
    def visiontl_on_phase_end(self, run: RunDir, phase: Phase, index: int, audit: AuditReport) -> None:
        mlflow = self._start(run)
        mlflow.log_metric(f"audit_ok_{metric_name(phase.name)}", 1.0 if audit.ok else 0.0)
        for name in ARTIFACTS:
            path = Path(run.path) / name
            if path.is_file():
                mlflow.log_artifact(str(path))
        if self.state(run).get("owned"):
            mlflow.end_run()


plugin = MlflowLogger()
