"""Transfer really transfers: the shipped hymenoptera recipes with the real ImageNet
SqueezeNet weights against the same recipes from random weights (runs of about a minute)."""

from __future__ import annotations

import pytest

from conftest import ROOT
from visiontl import api
from visiontl.config.loader import load_recipe

pytestmark = pytest.mark.slow


def run(name: str, shared_data, tmp_path, *overrides: str):
    recipe = load_recipe(ROOT / "recipes" / name, ["train.progress=false", f"output.dir={tmp_path}", *overrides])
    return api.run(recipe, data_root=shared_data).summary


def test_feature_extraction_with_imagenet_weights(shared_data, squeezenet_weights, tmp_path):
    pretrained = run("hymenoptera_feature_extraction.yaml", shared_data, tmp_path)
    assert pretrained["weights"]["source"] == f"file:{squeezenet_weights.resolve()}"
    assert pretrained["weights"]["loaded"] == 50
    assert pretrained["best"]["accuracy"] >= 0.88, pretrained["best"]
    assert pretrained["feature_cache"]["head"].startswith("cached")
    scratch = run("hymenoptera_feature_extraction.yaml", shared_data, tmp_path, "model.weights=null")
    assert scratch["weights"]["source"] == "random"
    assert scratch["best"]["accuracy"] <= pretrained["best"]["accuracy"] - 0.2, (scratch["best"], pretrained["best"])


def test_progressive_fine_tuning_with_imagenet_weights(shared_data, squeezenet_weights, tmp_path):
    pretrained = run("hymenoptera_progressive.yaml", shared_data, tmp_path)
    assert pretrained["best"]["accuracy"] >= 0.92, pretrained["best"]
    assert [a["ok"] for a in pretrained["audits"]] == [True, True, True]
    assert "final" in pretrained and "accuracy" in pretrained["final"]
    scratch = run("hymenoptera_progressive.yaml", shared_data, tmp_path, "model.weights=null")
    assert scratch["best"]["accuracy"] <= pretrained["best"]["accuracy"] - 0.15, (scratch["best"], pretrained["best"])
