"""The logger plugins (plugins/visiontl_loggers): TensorBoard, events.csv and MLflow, fed by
the event hooks of real training runs; their failure policy; rank 0 only."""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, tiny_recipe
from visiontl import api
from visiontl.config.loader import validate_recipe
from visiontl.errors import PluginError
from visiontl.freeze.audit import AuditReport
from visiontl.freeze.plan import GroupSetting, Phase
from visiontl.plugin_manager import build_plugin_manager, module_available
from visiontl.runs.layout import RunDir

TWO_PHASES = {"name": "custom", "phases": [{"name": "head", "train": "head", "epochs": 1}, {"name": "all", "train": "all", "epochs": 1}]}
FAKE_MLFLOW = '''
"""A stand-in for mlflow that records every call (tests only)."""
import itertools
calls = []
_ids = itertools.count(1)
_active = None

class _Info:
    def __init__(self, run_id):
        self.run_id = run_id

class _Run:
    def __init__(self, run_id):
        self.info = _Info(run_id)

def _record(name, *args, **kwargs):
    calls.append((name, args, kwargs))

def set_experiment(name):
    _record("set_experiment", name)

def active_run():
    return _active

def start_run(run_id=None, run_name=None):
    global _active
    _record("start_run", run_id=run_id, run_name=run_name)
    _active = _Run(run_id or f"run{next(_ids)}")
    return _active

def end_run(status="FINISHED"):
    global _active
    _record("end_run")
    _active = None

def log_params(params):
    _record("log_params", dict(params))

def set_tags(tags):
    _record("set_tags", dict(tags))

def set_tag(key, value):
    _record("set_tag", key, value)

def log_metrics(metrics, step=None):
    _record("log_metrics", dict(metrics), step=step)

def log_metric(key, value, step=None):
    _record("log_metric", key, value, step=step)

def log_artifact(path):
    _record("log_artifact", path)
'''


@pytest.fixture
def fake_mlflow(tmp_path, monkeypatch):
    """An importable ``mlflow`` with distribution metadata (so the plugin's ``requires``
    check passes), recording its calls; removed again after the test."""
    site = tmp_path / "fake_site"
    (site / "mlflow").mkdir(parents=True)
    (site / "mlflow" / "__init__.py").write_text(FAKE_MLFLOW)
    dist = site / "mlflow-2.99.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mlflow\nVersion: 2.99.0\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "mlflow", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    import mlflow

    yield mlflow
    sys.modules.pop("mlflow", None)


@pytest.fixture
def visiontl_warnings(caplog):
    """Records the ``visiontl`` logger's warnings (the CLI may have stopped propagation)."""
    logger = logging.getLogger("visiontl")
    attach = not logger.propagate  # propagating records reach caplog through the root logger
    if attach:
        logger.addHandler(caplog.handler)
    yield caplog
    if attach:
        logger.removeHandler(caplog.handler)


def _run(shapes_root: Path, out: Path, **sections):
    sections.setdefault("model", {"id": "timm:test_resnet"})
    sections.setdefault("train", {"threads": 1})
    recipe = validate_recipe(tiny_recipe(shapes_root, out, **sections), "test")
    return api.run(recipe, plugins=build_plugin_manager())


def _scalars(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], list[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    tags = acc.Tags()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]}, tags["tensors"]


def test_every_logger_records_every_epoch_of_a_two_phase_run(tmp_path, shapes_root, fake_mlflow):
    outcome = _run(shapes_root, tmp_path / "runs", strategy=TWO_PHASES)
    run_dir, history = outcome.run_dir, outcome.result.history
    assert [row["phase"] for row in history] == ["head", "all"]
    plan = json.loads((run_dir / "plan.json").read_text())
    counts = [sum(s["params"] for s in p["settings"] if s["trainable"]) for p in plan["phases"]]

    # TensorBoard: one point per epoch and tag, equal to the epoch rows (float32 in the files).
    scalars, texts = _scalars(run_dir / "tensorboard")
    assert {"loss/train", "loss/val", "val/accuracy", "lr/head", "lr/stem", "phase/index", "phase/trainable_params", "time/epoch_s"} <= set(scalars)
    for tag, key in (("loss/train", "train_loss"), ("loss/val", "val_loss"), ("val/accuracy", "accuracy"), ("lr/head", "lr_head")):
        assert [s for s, _ in scalars[tag]] == [1, 2]
        assert [v for _, v in scalars[tag]] == pytest.approx([row[key] for row in history], rel=1e-6, abs=1e-7)
    assert [s for s, _ in scalars["lr/stem"]] == [2]  # the stem trains in the second phase only
    assert [v for _, v in scalars["phase/index"]] == [0, 1]
    assert [v for _, v in scalars["phase/trainable_params"]] == counts and counts[0] < counts[1]
    assert "phases/text_summary" in texts

    # events.csv: the timeline, in order, with the same values.
    rows = list(csv.DictReader((run_dir / "events.csv").open()))
    order = [(r["event"], r["phase_index"]) for r in rows]
    assert list(dict.fromkeys(order)) == [("phase_start", "0"), ("epoch_end", "0"), ("phase_end", "0"),
                                          ("phase_start", "1"), ("epoch_end", "1"), ("phase_end", "1")]
    value = {(r["event"], r["phase"], r["epoch"], r["name"]): r["value"] for r in rows}
    assert value[("phase_start", "head", "", "trainable")] == "head"
    assert value[("phase_start", "all", "", "trainable_params")] == str(counts[1])
    for row in history:
        assert float(value[("epoch_end", row["phase"], str(row["epoch"]), "accuracy")]) == pytest.approx(row["accuracy"], rel=1e-7)
    assert value[("phase_end", "head", "", "audit_ok")] == "True" and int(value[("phase_end", "head", "", "audit_params_checked")]) > 0

    # MLflow: one run, resumed by id for the second phase, the recipe as params, metrics per epoch.
    calls = fake_mlflow.calls
    starts = [kw for name, _, kw in calls if name == "start_run"]
    assert starts[0] == {"run_id": None, "run_name": "t"} and starts[1] == {"run_id": "run1", "run_name": None}
    assert [name for name, _, _ in calls].count("end_run") == 2 and ("set_experiment", ("visiontl",), {}) in calls
    params = {k: v for name, args, _ in calls if name == "log_params" for k, v in args[0].items()}
    assert params["model.id"] == "timm:test_resnet" and params["train.epochs"] == "2" and params["strategy.name"] == "custom"
    logged = [(kw["step"], args[0]) for name, args, kw in calls if name == "log_metrics"]
    assert [step for step, _ in logged] == [1, 2]
    assert [m["accuracy"] for _, m in logged] == pytest.approx([row["accuracy"] for row in history])
    artifacts = {Path(args[0]).name for name, args, _ in calls if name == "log_artifact"}
    assert {"recipe.yaml", "plan.json", "metrics.csv"} <= artifacts
    assert ("set_tags", ({"visiontl.run_dir": str(run_dir), "visiontl.task": "classification", "visiontl.model": "timm:test_resnet"},), {}) in calls


def test_a_failing_logger_is_reported_and_training_goes_on(tmp_path, shapes_root, monkeypatch, visiontl_warnings):
    from torch.utils.tensorboard import SummaryWriter

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SummaryWriter, "add_scalar", full_disk)
    outcome = _run(shapes_root, tmp_path / "runs", train={"epochs": 2, "threads": 1})
    assert (outcome.run_dir / "summary.json").is_file() and len(outcome.result.history) == 2
    warnings = [r.getMessage() for r in visiontl_warnings.records if "logger 'tensorboard'" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once, then the logger is off for the run
    assert "No space left on device" in warnings[0] and "VISIONTL_DISABLE_PLUGINS=tensorboard" in warnings[0]
    epochs = {r["epoch"] for r in csv.DictReader((outcome.run_dir / "events.csv").open()) if r["event"] == "epoch_end"}
    assert epochs == {"1", "2"}  # the other loggers were unaffected


def _phase() -> Phase:
    settings = (GroupSetting("body", "stage", 100, False, None, "eval (stats fixed)"), GroupSetting("head", "head", 10, True, 0.01, "-"))
    return Phase("head", 1, ("head",), {"body": 0.01, "head": 0.01}, "freeze", settings)


def _plugin(name: str):
    import importlib

    module = {"tensorboard": "tensorboard_logger", "events_csv": "csv_logger", "mlflow": "mlflow_logger"}[name]
    return importlib.import_module(f"visiontl_loggers.{module}").plugin


def _fire_all(run: RunDir, names: tuple[str, ...]) -> None:
    phase = _phase()
    for name in names:
        plugin = _plugin(name)
        plugin.visiontl_on_phase_start(run=run, phase=phase, index=0)
        plugin.visiontl_on_epoch_end(run=run, phase=phase, epoch=1, metrics={"epoch": 1, "train_loss": 0.5, "accuracy": 0.75})
        plugin.visiontl_on_phase_end(run=run, phase=phase, index=0, audit=AuditReport("head", 3, 2))


def test_strict_mode_turns_a_logger_failure_into_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONTL_STRICT_LOGGERS", "1")
    run = RunDir(tmp_path / "run")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "events.csv").mkdir()  # a folder where the file should go
    with pytest.raises(PluginError, match="logger 'events_csv' failed") as info:
        _fire_all(run, ("events_csv",))
    assert "VISIONTL_STRICT_LOGGERS" in str(info.value)


def test_only_rank_zero_logs(tmp_path, monkeypatch, fake_mlflow):
    # The shared loop fires events on rank 0 only; the loggers also refuse on other ranks, for
    # trainers that fire everywhere.
    monkeypatch.setenv("RANK", "1")
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    _fire_all(run, ("tensorboard", "events_csv", "mlflow"))
    assert list(run.path.iterdir()) == [] and fake_mlflow.calls == []
    monkeypatch.setenv("RANK", "0")
    _fire_all(run, ("tensorboard", "events_csv", "mlflow"))
    assert {p.name for p in run.path.iterdir()} == {"tensorboard", "events.csv"} and fake_mlflow.calls


def test_loggers_are_plugins_that_can_be_blocked(monkeypatch):
    statuses = {s.name: s for s in build_plugin_manager().statuses}
    assert statuses["tensorboard"].status == "ok" and statuses["events_csv"].status == "ok"
    assert {"visiontl_on_phase_start", "visiontl_on_epoch_end", "visiontl_on_phase_end"} <= set(statuses["tensorboard"].hooks)
    if module_available("mlflow"):
        assert statuses["mlflow"].status == "ok"
    else:
        assert statuses["mlflow"].status == "missing" and statuses["mlflow"].hint == "pip install mlflow"
    monkeypatch.setenv("VISIONTL_DISABLE_PLUGINS", "tensorboard,events_csv")
    plugins = build_plugin_manager()
    blocked = {s.name: s.status for s in plugins.statuses}
    assert blocked["tensorboard"] == blocked["events_csv"] == "disabled"
    assert plugins.pm.get_plugin("tensorboard") is None and plugins.pm.get_plugin("events_csv") is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_two_process_run_logs_once(tmp_path, shapes_root):
    recipe = tiny_recipe(shapes_root, tmp_path / "runs", model={"id": "timm:test_resnet"}, train={"epochs": 2, "threads": 1})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(recipe))
    port = str(_free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "MPLBACKEND": "Agg"}
    env.pop("VISIONTL_DISABLE_PLUGINS", None)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", port, "-m", "visiontl", "run", str(path)]
    proc = subprocess.run(launch, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, textwrap.shorten(proc.stderr[-3000:], 3000)
    run_dir = tmp_path / "runs" / "classification" / "t"
    rows = list(csv.DictReader((run_dir / "events.csv").open()))
    assert [(r["event"], r["epoch"]) for r in rows if r["name"] == "accuracy"] == [("epoch_end", "1"), ("epoch_end", "2")]
    assert sum(1 for r in rows if r["event"] == "phase_start" and r["name"] == "epochs") == 1
    scalars, _ = _scalars(run_dir / "tensorboard")
    assert [s for s, _ in scalars["val/accuracy"]] == [1, 2]
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
