"""The shipped segmentation recipes, each run end to end on the shared data with a smoke
override (a few images, small inputs, one epoch per phase), then predict and eval on a run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import ROOT
from visiontl import api
from visiontl.cli import cli
from visiontl.config.loader import load_recipe

SMOKE = ["train.progress=false", "output.plots=true", "data.limit=4", "train.batch_size=4", "strategy.phase_epochs=[1,1,1]"]
RECIPES = {
    # recipe: (overrides, group the middle phase unfreezes)
    "segment_medical.yaml": (["model.pretrained=false", "data.image_size=64"], "stage3"),
    "segment_edge.yaml": (["model.pretrained=false", "data.image_size=64"], "stage3"),
    # Sliding windows over 640x480 images at 64 px is slow for a smoke run; the predict/eval test
    # below evaluates with sliding windows.
    "segment_coco128.yaml": (["model.pretrained=false", "data.image_size=64", "data.limit=3", "eval.inference=resize"], "stage3"),
    "segment_pennfudan_squeezenet.yaml": (["data.image_size=64"], "stage2"),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def smoke(name: str, shared_data, tmp_path, *extra: str):
    overrides, _ = RECIPES[name]
    recipe = load_recipe(ROOT / "recipes" / name, [*SMOKE, *overrides, f"output.dir={tmp_path}", *extra])
    return api.run(recipe, data_root=shared_data)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_smoke_run(name, shared_data, tmp_path):
    outcome = smoke(name, shared_data, tmp_path)
    summary = outcome.summary
    assert summary["task"] == "segmentation" and summary["epochs_run"] == 3
    assert [p["name"] for p in summary["phases"]] == ["head", "last2", "all"]
    assert RECIPES[name][1] in summary["phases"][1]["trainable"]
    assert all(a["ok"] for a in summary["audits"]) and summary["audits"][0]["buffers_checked"] >= 0
    assert 0.0 <= summary["final"]["miou"] <= 1.0 and summary["final"]["num_images"] >= 1
    assert (outcome.run_dir / "confusion_matrix.png").is_file() and (outcome.run_dir / "report.md").is_file()
    if name == "segment_coco128.yaml":
        assert summary["data"]["skipped_count"] == 56  # the coco128 images without a mask
        assert len(summary["data"]["classes"]) == 129
    if name == "segment_pennfudan_squeezenet.yaml":
        assert summary["weights"]["loaded"] == 50 and summary["weights"]["source"].startswith("backbone file:")


def test_predict_writes_overlays_and_eval_reproduces_the_metrics(shared_data, tmp_path, monkeypatch):
    outcome = smoke("segment_pennfudan_squeezenet.yaml", shared_data, tmp_path, "strategy.name=feature_extraction", "strategy.phase_epochs=null", "train.epochs=1")
    run_dir = outcome.run_dir
    monkeypatch.setenv("VISIONTL_DATA_DIR", str(shared_data))
    images = shared_data / "pennfudan" / "images"
    picks = [str(images / "FudanPed00001.png"), str(images / "PennPed00096.png")]
    result = CliRunner().invoke(cli, ["predict", str(run_dir), *picks, "--out", str(tmp_path / "pred"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.output)
    assert [p["error"] for p in predictions] == [None, None]
    for p in predictions:
        assert p["overlay"] and (tmp_path / "pred" / f"{p['path'].rsplit('/', 1)[1]}.png").is_file()
        assert p["details"]["inference"] in ("resize", "sliding") and sum(p["details"]["areas"].values()) == pytest.approx(1.0)
        assert {name for name, _ in p["top"]} <= {"background", "person"}
    from PIL import Image

    original = Image.open(picks[0])
    assert Image.open(predictions[0]["overlay"]).size == original.size
    result = CliRunner().invoke(cli, ["eval", str(run_dir), "--data-root", str(shared_data), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["miou"] == pytest.approx(outcome.summary["final"]["miou"], abs=1e-6)
    # Sliding-window evaluation on the same run: the images' own resolution, same classes.
    sliding = api.evaluate(run_dir, ["eval.inference=sliding"], data_root=shared_data)
    assert 0.0 <= sliding["miou"] <= 1.0 and sliding["num_pixels"] == metrics["num_pixels"]


def test_dry_run_shows_the_segmentation_groups(shared_data, tmp_path):
    result = CliRunner().invoke(
        cli,
        ["run", str(ROOT / "recipes" / "segment_medical.yaml"), "--dry-run", "--data-root", str(shared_data), "--set", "model.pretrained=false", "--set", "data.limit=2"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for group in ("stem", "stage1", "stage4", "decoder", "head"):
        assert group in result.output
