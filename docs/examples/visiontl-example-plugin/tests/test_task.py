"""The multilabel task: data reading and its errors, metrics, loss, prediction, and a short
training run through visiontl's shared loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from visiontl import api
from visiontl.config.loader import validate_recipe
from visiontl.errors import ConfigError, DataError
from visiontl.tasks.base import DataInfo

from visiontl_example.data import scan
from visiontl_example.metrics import average_precision, multilabel_metrics
from visiontl_example.task import MultiLabelTask


def test_average_precision_by_hand():
    # Ranked: 1 (pos), 2 (neg), 3 (pos): precision at the positives 1/1 and 2/3.
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7])) == pytest.approx((1 + 2 / 3) / 2)
    # A tie between a positive and a negative is one threshold: precision 1/2 there.
    assert average_precision(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert math.isnan(average_precision(np.array([0, 0]), np.array([0.1, 0.2])))


def test_multilabel_metrics_by_hand():
    targets = np.array([[1, 0], [1, 1], [0, 0]])
    probs = np.array([[0.9, 0.2], [0.4, 0.8], [0.6, 0.1]])
    m = multilabel_metrics(targets, probs, ["a", "b"])
    # predicted: [1,0], [0,1], [1,0] -> class a: tp 1 fp 1 fn 1; class b: tp 1.
    assert m["f1_micro"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert m["per_class"]["a"]["precision"] == pytest.approx(0.5) and m["per_class"]["b"]["f1"] == pytest.approx(1.0)
    assert m["exact_match"] == pytest.approx(1 / 3)
    assert m["map"] == pytest.approx((average_precision(targets[:, 0], probs[:, 0]) + 1.0) / 2)


def _write(tmp_path, rows, header="path,labels"):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    path = tmp_path / "data.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_scan_reads_labels_keeps_negatives_and_reports_bad_files(tmp_path):
    csv_path = _write(tmp_path, ["ok.png,cat dog", "ok.png,", "bad.png,cat", "ok.png,dog;cat"])
    split = scan(csv_path, None, ["cat", "dog"])
    assert [it.labels for it in split.items] == [(0, 1), (), (0, 1)]
    assert split.skipped == {str(tmp_path / "bad.png"): "not a recognised image format"}


def test_scan_rejects_an_unknown_label_with_the_nearest_name(tmp_path):
    with pytest.raises(DataError, match="Did you mean 'dog'"):
        scan(_write(tmp_path, ["ok.png,cat dgo"]), None, ["cat", "dog"])


def test_scan_needs_a_labels_column(tmp_path):
    with pytest.raises(DataError, match="labels column"):
        scan(_write(tmp_path, ["ok.png,cat"], header="path,klass"), None, ["cat"])


def _recipe(root, out, **extra):
    data = {"format": "csv", "root": str(root), "train": "train.csv", "val": "val.csv", "image_size": 32}
    recipe = {
        "task": "multilabel",
        "data": data,
        "model": {"id": "tinycnn:nano"},
        "strategy": {"name": "full"},
        "optimizer": {"lr": 0.01},
        "augmentation": {"preset": "none"},
        "train": {"epochs": 2, "batch_size": 16, "progress": False, "threads": 1},
        "output": {"dir": str(out), "name": "t", "plots": False},
    }
    for key, value in extra.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return validate_recipe(recipe, "test")


def test_inspect_counts_labels_per_class(shapes, tmp_path):
    info = MultiLabelTask().inspect(_recipe(shapes, tmp_path), tmp_path)
    assert info.class_names == ["circle", "square", "triangle"]
    assert info.images("train") == 48 and info.images("val") == 24
    assert 0 < info.counts["train"]["circle"] < 48


def test_wrong_format_and_loss_are_config_errors(shapes, tmp_path):
    task = MultiLabelTask()
    with pytest.raises(ConfigError, match="data.format 'imagefolder'"):
        task.inspect(_recipe(shapes, tmp_path, data={"format": "imagefolder"}), tmp_path)
    info = DataInfo(["a", "b"], {"train": {"a": 1, "b": 1}})
    with pytest.raises(ConfigError, match="Did you mean 'bce'"):
        task.loss_function(_recipe(shapes, tmp_path, loss={"name": "bec"}), info)


def test_balanced_class_weights_set_pos_weight(shapes, tmp_path):
    task = MultiLabelTask()
    info = DataInfo(["rare", "common"], {"train": {"rare": 1, "common": 9}}, extras={"images": {"train": 10}})
    loss = task.loss_function(_recipe(shapes, tmp_path, loss={"class_weights": "balanced"}), info)
    logits, targets = torch.zeros(1, 2), torch.tensor([[1.0, 1.0]])
    # pos_weight = negatives/positives: 9 for the rare class, 1/9 for the common one.
    expected = (9 * math.log(2) + (1 / 9) * math.log(2)) / 2
    assert float(loss(logits, targets)) == pytest.approx(expected, rel=1e-5)


def test_training_through_the_shared_loop_writes_a_run(shapes, tmp_path, plugins):
    outcome = api.run(_recipe(shapes, tmp_path / "runs"), plugins=plugins, data_root=tmp_path)
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["task"] == "multilabel" and summary["primary_metric"] == "map"
    assert summary["epochs_run"] == 2 and 0.0 <= summary["best"]["map"] <= 1.0
    assert set(summary["final_details"]["per_class"]) == {"circle", "square", "triangle"}
    assert "| circle |" in (outcome.run_dir / "report.md").read_text()
    # Prediction through the task: labels above the threshold, best first, every score kept.
    image = shapes / "images" / "val" / "val_0000.png"
    (prediction,) = api.predict(outcome.run_dir, [image], plugins=plugins, score_threshold=0.0)
    scores = prediction.details["scores"]
    assert set(scores) == {"circle", "square", "triangle"}
    assert [name for name, _ in prediction.top] == sorted(scores, key=lambda n: -scores[n])


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_recipes_validate_and_plan(path, tmp_path, plugins, monkeypatch):
    from visiontl.config.loader import load_recipe

    recipe = load_recipe(path, ["data.image_size=32"])
    assert recipe.model.id.startswith("tinycnn:")
    # Resolving the plan generates the recipe's data (data.synthesize) under the data root.
    prepared = api.prepare(recipe, plugins, data_root=tmp_path)
    phases = [p.name for p in prepared.plan.phases]
    assert phases == (["head", "last2", "all"] if recipe.strategy.name == "progressive" else ["all"])
    assert prepared.groups[-1].name == "head" and prepared.task.name == recipe.task


def test_the_task_trains_over_a_torchvision_backbone_with_a_progressive_plan(shapes, tmp_path, installed):
    """The multilabel task over torchvision:squeezenet1_1, a family that has never heard of it:
    head, then the last group, then everything, each phase audited."""
    recipe = _recipe(shapes, tmp_path / "runs", model={"id": "torchvision:squeezenet1_1", "pretrained": False},
                     strategy={"name": "progressive", "phase_epochs": [1, 1, 1], "unfreeze_last": 1},
                     optimizer={"lr": [0.001, 0.01]}, train={"epochs": 3})
    outcome = api.run(recipe, plugins=installed, data_root=tmp_path)
    summary = outcome.summary
    assert (summary["task"], summary["model_id"]) == ("multilabel", "torchvision:squeezenet1_1")
    assert [a["phase"] for a in summary["audits"]] == ["head", "last1", "all"]
    assert 0.0 <= summary["best"]["map"] <= 1.0

