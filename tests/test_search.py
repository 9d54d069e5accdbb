"""``visiontl search``: space, budget, trials as runs, pruning, kill-and-resume, Ray, plugins.

Everything is tiny: the generated shapes dataset at 32 px, timm's resnet10t (random init),
1-4 epochs, 2-3 trials, one torch thread, latency timed for 0.1-0.2 s.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from visiontl import hookimpl

pytestmark = pytest.mark.usefixtures("one_torch_thread")
pytest.importorskip("optuna")

TINY = {"target": "server", "models": ["timm:resnet10t"], "sizes": [32], "augmentations": ["none"], "bench_seconds": 0.1, "finalists": 1}
TINY_SET = ["train.batch_size=8", "train.threads=1"]


def _visiontl() -> list[str]:
    script = shutil.which("visiontl", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "visiontl"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VISIONTL_DISABLE_PLUGINS", "VISIONTL_TRACE_PLUGINS")}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", **extra)
    return env


def _study(out: Path):
    from visiontl.search import study as studies
    from visiontl.search.spec import SearchSpec

    return studies.open_study(SearchSpec.load(out))


def _trials(out: Path) -> dict[int, object]:
    return {t.number: t for t in _study(out).get_trials(deepcopy=False)}


# --------------------------------------------------------------------------- no training


def test_budget_parses_trials_and_durations():
    from visiontl.errors import ConfigError
    from visiontl.search.budget import format_seconds, parse_budget

    assert parse_budget("12").trials == 12
    assert parse_budget("20m").seconds == 1200 and parse_budget("1h30m").seconds == 5400 and parse_budget("90s").seconds == 90
    assert format_seconds(750) == "12m30s"
    for bad in ("0", "soon", "", "5x"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


def test_the_search_section_follows_the_recipe_schemas_rules():
    import typing

    from visiontl.config import schema
    from visiontl.errors import ConfigError
    from visiontl.search.section import AugmentationPreset, search_section

    assert typing.get_args(AugmentationPreset) == typing.get_args(schema.AugmentationPreset)
    assert search_section({"budget": "20m", "workers": 2}).workers == 2
    for bad in ({"workers": True}, {"budgett": 3}, {"lr": [1e-2, 1e-4]}, {"formats": ["tflite"]}, {"bench_seconds": float("nan")}):
        with pytest.raises(ConfigError):
            search_section(bad)


def test_space_samples_only_meaningful_dimensions_and_makes_valid_recipes(shapes_root, tmp_path):
    import optuna

    from conftest import tiny_recipe
    from visiontl.config.loader import validate_recipe
    from visiontl.search.space import CandidateModel, SearchSpace, trial_recipe

    space = SearchSpace([CandidateModel("timm:resnet10t", "timm:resnet10t")], ["feature_extraction", "progressive"], (1e-4, 1e-2),
                        [1.0, 10.0], [32], ["none", "light"], 3)
    head_only = space.suggest(optuna.trial.FixedTrial({"model": "timm:resnet10t", "strategy": "feature_extraction", "lr": 1e-3,
                                                       "image_size": 32, "augmentation": "none"}))
    assert "lr_spread" not in head_only  # feature extraction trains the head only: no spread
    spread = space.suggest(optuna.trial.FixedTrial({"model": "timm:resnet10t", "strategy": "progressive", "lr": 1e-3, "lr_spread": 10.0,
                                                    "image_size": 32, "augmentation": "light"}))
    base = tiny_recipe(shapes_root, tmp_path, export={"formats": ["onnx"]})
    recipe = validate_recipe(trial_recipe(base, spread, space, tmp_path / "runs", "trial-0007"), "test")
    assert recipe.optimizer.lr == pytest.approx((1e-4, 1e-3)) and recipe.strategy.name == "progressive"
    assert (recipe.output.dir, recipe.output.name, recipe.export) == (str(tmp_path / "runs"), "trial-0007", None)
    assert (recipe.train.epochs, recipe.augmentation.preset, recipe.data.image_size) == (3, "light", 32)


def test_help_imports_neither_torch_nor_optuna_nor_ray():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom visiontl.cli import cli\n"
            "r = CliRunner().invoke(cli, ['search', '--help'])\nassert r.exit_code == 0, r.output\nassert '--budget' in r.output\n"
            "print([m for m in ('torch', 'optuna', 'ray', 'timm') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()).stdout.strip()
    assert out == "[]"


def test_dry_run_prints_the_space_from_the_selection_engine_and_the_cost(shapes_root, tmp_path):
    from click.testing import CliRunner

    from visiontl.cli import cli

    result = CliRunner().invoke(cli, ["search", "--task", "classification", "--data", str(shapes_root), "--target", "edge",
                                      "--budget", "20m", "--out", str(tmp_path / "s"), "--dry-run"])
    assert result.exit_code == 0, result.output
    out = result.output
    # No --models: the selection engine's candidates within the edge budget, advised strategy + neighbours.
    assert "from selection" in out and "predicted" in out
    assert "strategies: feature_extraction, progressive" in out and "expected cost" in out and "trial(s) in 20m00s" in out
    assert not (tmp_path / "s").exists()  # a dry run writes nothing


def test_a_recipes_search_section_gives_the_settings_and_flags_override_it(shapes_root, tmp_path):
    from click.testing import CliRunner

    from conftest import tiny_recipe
    from visiontl.cli import cli

    recipe = {**tiny_recipe(shapes_root, tmp_path), "search": {"budget": 3, "models": ["timm:resnet10t"], "sizes": [32, 48], "pruner": "none"}}
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(cli, ["search", "--recipe", str(path), "--sizes", "32", "--out", str(tmp_path / "s"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "budget: 3 trials" in result.output and "pruner: none" in result.output and "input sizes: 32\n" in result.output
    assert "timm:resnet10t: weights: none (random init); from models" in result.output
    bad = CliRunner().invoke(cli, ["search", "--recipe", str(path), "--budget", "soon", "--dry-run"])
    assert bad.exit_code == 1 and "search.budget" in bad.output


# --------------------------------------------------------------------------- a 2-trial search


@pytest.fixture(scope="module")
def searched(shapes_root, tmp_path_factory):
    """A finished 2-trial search on shapes (ONNX finalist), run through the Python API."""
    from visiontl.plugin_manager import set_plugins
    from visiontl.search import api

    set_plugins(None)
    out = tmp_path_factory.mktemp("search") / "two"
    lines: list[str] = []
    plan = api.plan(task="classification", data=shapes_root, overrides=TINY_SET, out=out,
                    section={**TINY, "budget": "2", "epochs": 2, "strategies": ["feature_extraction", "full"], "formats": ["onnx"]})
    result = api.run(plan, say=lines.append)
    return result, lines


def test_search_writes_leaderboard_plot_and_a_valid_best_recipe(searched):
    from visiontl.config.loader import load_recipe

    result, lines = searched
    out = result.out
    assert {"leaderboard.json", "leaderboard.csv", "pareto.png", "best.yaml", "search.json", "study.db"} <= {p.name for p in out.iterdir()}
    board = json.loads((out / "leaderboard.json").read_text())
    assert [r["state"] for r in board["trials"]] == ["complete", "complete"]
    assert board["metric"] == "accuracy" and board["deploy_format"] == "onnx"
    chosen = [r for r in board["trials"] if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["finalist"] and chosen[0]["pareto"] and chosen[0]["latency_ms"]["onnx"] > 0
    assert "trial,state,value" in (out / "leaderboard.csv").read_text().splitlines()[0]
    best = load_recipe(out / "best.yaml")  # validates
    assert best.model.id == "timm:resnet10t" and best.export.formats == ["onnx"] and best.output.dir == "runs"
    assert best.strategy.name == chosen[0]["strategy"]
    # Live progress: every epoch of every trial, with the best so far and the budget.
    epoch_lines = [line for line in lines if " epoch " in line]
    assert len(epoch_lines) == 4 and all("search best" in line and "trial budget" in line for line in epoch_lines)


def test_every_trial_is_an_ordinary_run_directory(searched):
    from visiontl import api

    result, _ = searched
    for row in result.rows:
        run = Path(row["run_dir"])
        assert (run / "summary.json").is_file() and (run / "checkpoints" / "best.pt").is_file()
        assert json.loads((run / "search_trial.json").read_text())["trial"] == row["trial"]
    chosen = Path(result.best["run_dir"])
    assert "onnx-fp32" in json.loads((chosen / "summary.json").read_text())["exports"]  # exported by the export pipeline
    metrics = api.evaluate(chosen)
    assert metrics["accuracy"] == pytest.approx(result.best["value"])


# --------------------------------------------------------------------------- pruning


class ForcedMetric:
    """Reports a bad validation accuracy for trial 1's run and a good one for the others
    (``tryfirst``: before the search's own reporter reads the epoch's row)."""

    @hookimpl(tryfirst=True)
    def visiontl_on_epoch_end(self, run, phase, epoch, metrics):
        metrics["accuracy"] = 0.0 if Path(run.path).name == "trial-0001" else 0.9


def test_pruning_stops_a_bad_trial_early(shapes_root, tmp_path):
    from visiontl.plugin_manager import build_plugin_manager
    from visiontl.search import api

    plugins = build_plugin_manager(extra_plugins=[("forced-metric", ForcedMetric())])
    plan = api.plan(task="classification", data=shapes_root, overrides=TINY_SET, out=tmp_path / "prune", plugins=plugins,
                    section={**TINY, "budget": "2", "epochs": 3, "strategies": ["full"], "pruner": "sha", "formats": ["torch"]})
    result = api.run(plan, plugins=plugins, say=lambda line: None)
    states = {row["trial"]: row["state"] for row in result.rows}
    assert states == {0: "complete", 1: "pruned"}
    pruned = next(r for r in result.rows if r["trial"] == 1)
    assert pruned["epochs"] == 1  # of 3: stopped at the first rung
    status = json.loads((Path(pruned["run_dir"]) / "status.json").read_text())
    assert status["status"] == "pruned" and status["epochs_trained"] == 1 and status["epochs_planned"] == 3
    assert (Path(pruned["run_dir"]) / "checkpoints" / "best.pt").is_file()  # still usable by eval/export


# --------------------------------------------------------------------------- kill and resume


def test_a_killed_search_resumes_without_repeating_finished_trials(shapes_root, tmp_path):
    out = tmp_path / "killed"
    runs = out / "runs" / "classification"
    args = ["search", "--task", "classification", "--data", str(shapes_root), "--target", "server", "--budget", "3",
            "--models", "timm:resnet10t", "--sizes", "32", "--epochs", "4", "--strategies", "full", "--augmentations", "none",
            "--lr", "1e-3,1e-3", "--lr-spread", "1", "--pruner", "none", "--formats", "torch", "--bench-seconds", "0.1",
            "--finalists", "1", "--threads", "1", "--set", "train.batch_size=8", "--out", str(out)]
    log = tmp_path / "first.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([*_visiontl(), *args], stdout=sink, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
        try:
            deadline = time.time() + 240
            # Kill once trial 0 is complete and trial 1 has checkpointed its first epoch (of 4).
            while not (runs / "trial-0001" / "checkpoints" / "last.pt").is_file():
                assert proc.poll() is None, f"the search ended before trial 1 trained an epoch:\n{log.read_text()[-3000:]}"
                assert time.time() < deadline, f"trial 1 never trained an epoch:\n{log.read_text()[-3000:]}"
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    finished = runs / "trial-0000" / "summary.json"
    stamp = finished.stat().st_mtime_ns
    before = _trials(out)
    assert before[0].state.name == "COMPLETE" and before[1].state.name == "RUNNING", log.read_text()[-3000:]

    done = subprocess.run([*_visiontl(), "search", "--resume", str(out)], capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "trial 1 was interrupted" in done.stdout and "continues" in done.stdout

    after = _trials(out)
    assert finished.stat().st_mtime_ns == stamp  # trial 0 was not trained again
    assert after[1].state.name == "FAIL" and after[1].user_attrs["interrupted"]
    assert after[2].user_attrs["resumes_trial"] == 1 and after[2].state.name == "COMPLETE"
    assert sorted(t.number for t in after.values() if t.state.name == "COMPLETE") == [0, 2, 3]
    # Trial 1's run went on from its checkpoint, in its own folder: each epoch once.
    resumed = runs / "trial-0001"
    epochs = [line.split(",")[0] for line in (resumed / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3", "4"] and (resumed / "summary.json").is_file()
    marker = json.loads((resumed / "search_trial.json").read_text())
    assert marker["trial"] == 2 and marker["previous_trials"] == [1]
    assert sorted(p.name for p in runs.iterdir()) == ["trial-0000", "trial-0001", "trial-0003"]
    assert (out / "best.yaml").is_file()


# --------------------------------------------------------------------------- Ray


def test_ray_backend_runs_two_trials_in_parallel(shapes_root, tmp_path):
    pytest.importorskip("ray.tune")
    from visiontl.search import api

    plan = api.plan(task="classification", data=shapes_root, overrides=TINY_SET, out=tmp_path / "ray",
                    section={**TINY, "budget": "2", "epochs": 3, "strategies": ["feature_extraction", "full"], "formats": ["torch"],
                             "backend": "ray", "workers": 2})
    result = api.run(plan, say=lambda line: None)
    assert sorted(r["state"] for r in result.rows) == ["complete", "complete"]
    spans = []
    for row in result.rows:
        run = Path(row["run_dir"])
        spans.append(((run / "recipe.yaml").stat().st_mtime, (run / "summary.json").stat().st_mtime))
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, f"the two trials did not overlap: {spans}"
    assert all(t.state.name == "COMPLETE" for t in _study(result.out).get_trials())  # recorded in the search's own study
    assert (result.out / "best.yaml").is_file()


# --------------------------------------------------------------------------- a third-party task


def test_search_over_the_example_plugins_task(tmp_path):
    """The example plugin's ``multilabel`` task and ``tinycnn`` family: no search code of their own."""
    example = ROOT / "docs" / "examples" / "visiontl-example-plugin"
    source, site = tmp_path / "source", tmp_path / "site"
    shutil.copytree(example, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache", "data", "runs"))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index", "--no-deps",
           "--no-build-isolation", "--target", str(site), str(source)]
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    env = _env(PYTHONPATH=os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p), VISIONTL_DATA_DIR=str(tmp_path / "data"))
    out = tmp_path / "multilabel"
    args = ["search", "--recipe", str(source / "recipes" / "multilabel_shapes.yaml"), "--target", "edge", "--budget", "2",
            "--models", "tinycnn:nano,tinycnn:micro", "--sizes", "32", "--epochs", "2", "--strategies", "full", "--pruner", "none",
            "--set", "data.limit=24", "--set", "train.batch_size=8", "--threads", "1", "--formats", "torch",
            "--bench-seconds", "0.1", "--out", str(out)]
    proc = subprocess.run([*_visiontl(), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["task"] == "multilabel" and board["metric"] == "map" and board["direction"] == "maximize"
    assert [r["state"] for r in board["trials"]] == ["complete", "complete"]
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["task"] == "multilabel" and best["model"]["id"].startswith("tinycnn:")
