"""Every shipped recipe smoke-runs in CI against the shared data (tiny overrides).

Detection, segmentation and Ultralytics recipes are smoke-run by their own test files (listed
in COVERED_ELSEWHERE, checked below); the hymenoptera recipes run in full in test_transfer.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from visiontl import api
from visiontl.config.loader import load_recipe

RECIPES = sorted(p.name for p in (ROOT / "recipes").glob("*.yaml"))

COVERED_ELSEWHERE = {
    "detect_accurate.yaml": "test_detection_task.py",
    "instance_seg.yaml": "test_detection_task.py",
    "detect_pennfudan_squeezenet.yaml": "test_detection_task.py",
    "detect_realtime.yaml": "test_ultralytics_plugin.py",
    "segment_medical.yaml": "test_segmentation_recipes.py",
    "segment_edge.yaml": "test_segmentation_recipes.py",
    "segment_coco128.yaml": "test_segmentation_recipes.py",
    "segment_pennfudan_squeezenet.yaml": "test_segmentation_recipes.py",
    "hymenoptera_feature_extraction.yaml": "test_transfer.py",
    "hymenoptera_progressive.yaml": "test_transfer.py",
}

SMOKE = ["data.limit=4", "data.image_size=48", "train.batch_size=4", "train.progress=false", "model.pretrained=false", "output.plots=false"]


def smoke(name: str, out: Path, shared: Path, *extra: str):
    overrides = [*SMOKE, f"output.dir={out}", *extra]
    recipe = load_recipe(ROOT / "recipes" / name, overrides)
    if recipe.strategy.name == "progressive":
        recipe = load_recipe(ROOT / "recipes" / name, [*overrides, "strategy.phase_epochs=[1,1,1]"])
    else:
        recipe = load_recipe(ROOT / "recipes" / name, [*overrides, "train.epochs=1"])
    return api.run(recipe, data_root=shared)


def test_every_recipe_is_smoke_run_somewhere():
    here = {"quickstart.yaml", "small_data_server.yaml", "mobile_30fps.yaml", "competition.yaml", "competition_ensemble.yaml", "distill_mobile.yaml"}
    for name in RECIPES:
        assert name in here or name in COVERED_ELSEWHERE, f"{name} is smoke-run by no test"
        if name in COVERED_ELSEWHERE:
            assert name in (ROOT / "tests" / COVERED_ELSEWHERE[name]).read_text(), name


def test_quickstart_runs_without_shared_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # generates its dataset under ./data like the README's demo
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", ["strategy.phase_epochs=[1,1,1]", "train.progress=false", f"output.dir={tmp_path / 'runs'}"])
    outcome = api.run(recipe, data_root=tmp_path / "data")
    assert (tmp_path / "data" / "quickstart_shapes" / "train" / "circle").is_dir()
    assert outcome.summary["weights"]["source"] == "random" and len(outcome.result.history) == 3


@pytest.mark.parametrize("name", ["small_data_server.yaml", "mobile_30fps.yaml"])
def test_classification_scenarios_smoke(name, tmp_path, shared_data):
    outcome = smoke(name, tmp_path, shared_data)
    assert outcome.result.history and all(a["ok"] for a in outcome.summary["audits"])
    recipe = load_recipe(ROOT / "recipes" / name)
    if recipe.export is not None:  # the export section ran on the best checkpoint and was verified
        for fmt in recipe.export.formats:
            entry = outcome.summary["exports"][f"{fmt}-{recipe.export.precision}"]
            assert Path(entry["manifest"]).is_file() and entry["images"] > 0 and entry["agreement"] is not None


def test_competition_to_mobile_chain(tmp_path, shared_data):
    runs = tmp_path / "classification"
    smoke("competition.yaml", tmp_path, shared_data)
    smoke("competition.yaml", tmp_path, shared_data, "train.seed=1", "output.name=competition-seed1")
    members = f"ensemble.members=[{runs / 'competition'},{runs / 'competition-seed1'}]"
    outcome = smoke("distill_mobile.yaml", tmp_path, shared_data, f"distill.{members}")
    assert [t["source"] for t in outcome.summary["distillation"]["teachers"]] == [str(runs / "competition"), str(runs / "competition-seed1")]
    # the ensemble recipe scores the same two runs as one model, next to each member
    scores = api.evaluate(ROOT / "recipes" / "competition_ensemble.yaml", [members, *SMOKE[:2]], data_root=shared_data)
    assert [m["source"] for m in scores["members"]] and len(scores["members"]) == 2 and 0.0 <= scores["accuracy"] <= 1.0
