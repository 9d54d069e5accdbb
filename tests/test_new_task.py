"""A new image-level task, defined only in the tests (tests/regression_task.py), uses the
built-in families through their output contracts: it trains over ``torchvision:squeezenet1_1``
and ``timm:resnet10t`` (no wrapper) with a progressive plan and the freeze audits, the best
epoch follows its lower-is-better metric, reports are worded from the task, and
``visiontl select --task`` ranks, explains and writes a recipe for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from regression_task import NAME, make_counting_data, plugins_with_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def counting_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_counting_data(tmp_path_factory.mktemp("counting") / "squares", train=16, val=8)


@pytest.fixture
def plugins():
    """The installed plugins plus the test's task, made the process-wide manager (as an
    installed plugin's task would be), so every command and hook sees the task."""
    from visiontl.plugin_manager import set_plugins

    pm = plugins_with_task()
    set_plugins(pm)
    return pm


def counting_recipe(root: Path, out: Path, model_id: str, **extra: dict) -> dict:
    recipe = {
        "task": NAME,
        "data": {"format": "csv", "root": str(root), "train": "train.csv", "val": "val.csv", "image_size": 32},
        "model": {"id": model_id, "pretrained": False},
        "strategy": {"name": "progressive", "phase_epochs": [1, 1, 1], "unfreeze_last": 1},
        "optimizer": {"lr": [0.001, 0.01]},
        "augmentation": {"preset": "none"},
        "train": {"epochs": 3, "batch_size": 8, "progress": False, "seed": 0, "threads": 1},
        "output": {"dir": str(out), "name": model_id.split(":")[1], "plots": False},
    }
    for key, value in extra.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return recipe


@pytest.mark.parametrize("model_id", ["torchvision:squeezenet1_1", "timm:resnet10t"])
def test_the_new_task_trains_over_built_in_families_with_a_progressive_plan(model_id, plugins, counting_root, tmp_path):
    from visiontl import api
    from visiontl.config.loader import validate_recipe

    recipe = validate_recipe(counting_recipe(counting_root, tmp_path, model_id))
    prepared = api.prepare(recipe, plugins)
    assert prepared.built.output == "image_vector" and prepared.built.task == NAME
    assert [p.name for p in prepared.plan.phases] == ["head", "last1", "all"]
    outcome = api.run(recipe, plugins=plugins)
    summary = outcome.summary
    assert (summary["task"], summary["model_id"], summary["primary_metric"]) == (NAME, model_id, "mae")
    # One freeze audit per phase: the frozen groups and their BatchNorm buffers did not move.
    assert [a["phase"] for a in summary["audits"]] == ["head", "last1", "all"]
    assert summary["audits"][0]["params_checked"] > 0
    # MAE is lower-is-better: the best epoch is the one with the lowest MAE.
    history = [json.loads(json.dumps(r)) for r in outcome.result.history]
    assert summary["best"]["mae"] == pytest.approx(min(r["mae"] for r in history))
    report = (outcome.run_dir / "report.md").read_text()
    assert "- Data: 1 target," in report and "## Errors (final epoch)" in report and "Per class" not in report and " classes" not in report
    # The trained model predicts one number per image through the task.
    (prediction,) = api.predict(outcome.run_dir, [counting_root / "images" / "val_001.png"], plugins=plugins)
    assert [name for name, _ in prediction.top] == ["count"]


def test_eval_metric_val_loss_is_minimised_and_accepted_by_the_preflight(plugins, counting_root, tmp_path):
    from visiontl import api
    from visiontl.config.loader import validate_recipe
    from visiontl.config.preflight import check_runnable

    recipe = validate_recipe(counting_recipe(counting_root, tmp_path, "timm:resnet10t", eval={"metric": "val_loss"},
                                             strategy={"name": "feature_extraction", "phase_epochs": None}))
    assert check_runnable(recipe, plugins) == []
    outcome = api.run(recipe, plugins=plugins)
    history = outcome.result.history
    assert outcome.summary["best"]["val_loss"] == pytest.approx(min(r["val_loss"] for r in history))


def test_a_family_that_cannot_provide_the_output_says_so(plugins):
    from visiontl.contracts import BuildRequest
    from visiontl.errors import PluginError
    from visiontl.ids import parse_model_id

    request = BuildRequest(parse_model_id("smp:unet-resnet18"), NAME, 1, output="image_vector")
    with pytest.raises(PluginError, match="dense K-channel map"):
        plugins.hook.visiontl_build(request=request)


def test_select_ranks_explains_and_writes_a_recipe_for_the_new_task(plugins, tmp_path):
    from visiontl.cli import cli
    from visiontl.config.loader import validate_recipe

    path = tmp_path / "counting.yaml"
    result = CliRunner().invoke(cli, ["select", "--task", NAME, "--target", "server", "--json", "--write-recipe", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    ids = [c["id"] for c in out["candidates"]]
    assert ids and all(i.split(":")[0] in ("timm", "torchvision") for i in ids)
    best = out["candidates"][0]
    assert best["metric_label"] == "backbone ImageNet top-1 (proxy)" and "proxy" in best["reasons"]
    assert any("no published mae figures" in n for n in out["notes"])
    # The budget of the task whose models give the same output applies.
    assert out["budget_ms"] == 30 and any("budget of 'classification'" in n for n in out["notes"])
    recipe = validate_recipe(yaml.safe_load(path.read_text()))
    assert recipe.task == NAME and recipe.data.format == "csv" and recipe.model.id == best["id"]
    # Nothing classification-only is advised for it (label smoothing, mixup).
    assert recipe.loss.label_smoothing == 0.0 and recipe.augmentation.mixup == 0.0
    text = CliRunner().invoke(cli, ["select", "--task", NAME]).output
    assert "backbone ImageNet top-1 (proxy)" in text


def test_task_names_get_did_you_mean_in_select_and_models(plugins):
    from visiontl.cli import cli

    for args in (["select", "--task", "square_cont"], ["models", "--task", "square_cont"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "Did you mean 'square_count'" in result.output, result.output


def test_models_lists_the_built_in_families_for_the_new_task(plugins):
    from visiontl.catalogue import buildable_ids, catalogue

    cards = catalogue(task=NAME, plugins=plugins)
    assert {c.family for c in cards} >= {"timm", "torchvision"} and all(NAME in c.tasks for c in cards)
    assert not any(c.family == "smp" for c in cards)  # dense maps are not image vectors
    ids = buildable_ids(task=NAME, plugins=plugins)
    assert "squeezenet1_1" in ids["torchvision"] and "resnet10t" in ids["timm"] and "smp" not in ids


def test_eval_and_an_ensemble_of_the_new_task_are_worded_and_combined_by_the_task(plugins, counting_root, tmp_path, monkeypatch):
    """Two runs of the task as one model: the task combines their outputs (a weighted mean of
    the counts), eval scores the ensemble and each member with the task's metrics; eval
    --data resolves a relative dataset against the data root."""
    from visiontl import api
    from visiontl.cli import cli
    from visiontl.config.loader import validate_recipe

    runs = []
    for seed in (0, 1):
        recipe = counting_recipe(counting_root, tmp_path / "runs", "timm:resnet10t", strategy={"name": "feature_extraction", "phase_epochs": None},
                                 train={"epochs": 1, "seed": seed}, output={"name": f"seed{seed}"})
        runs.append(api.run(validate_recipe(recipe), plugins=plugins).run_dir)
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text(yaml.safe_dump({
        "task": NAME,
        "data": {"format": "csv", "root": str(counting_root), "train": "train.csv", "val": "val.csv"},
        "model": {"id": "timm:resnet10t"},
        "ensemble": {"members": [str(r) for r in runs], "weights": [3, 1]},
    }))
    metrics = api.evaluate(ensemble, plugins=plugins)
    assert {"mae", "rmse", "mae@seed0", "mae@seed1"} <= set(metrics) and [m["name"] for m in metrics["members"]] == ["seed0", "seed1"]
    loaded = api.load_trained(ensemble, plugins)
    x = __import__("torch").rand(2, 3, 32, 32)
    members = [m.model(x) for m in loaded.members]
    assert loaded.model(x).detach().numpy() == pytest.approx((0.75 * members[0] + 0.25 * members[1]).detach().numpy(), abs=1e-5)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["eval", str(runs[0]), "--data", counting_root.name, "--data-root", str(counting_root.parent), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["mae"] == pytest.approx(api.evaluate(runs[0], plugins=plugins)["mae"])
