"""The detection tasks end to end: inspect, collate, loss terms, runs through the shared
loop (summary, report, checkpoints), predict overlays, eval, and the shipped recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from detection_fixtures import make_coco, write_json

from visiontl import api
from visiontl.config.loader import load_recipe, validate_recipe
from visiontl.errors import ConfigError
from visiontl.tasks.base import Batch, PredictionResult

ROOT = Path(__file__).resolve().parents[1]
SQUEEZE = {
    "backbone": "torchvision:squeezenet1_1",
    "representation_size": 64,
    "min_size": 64,
    "max_size": 96,
    "rpn_pre_nms_top_n_train": 64,
    "rpn_post_nms_top_n_train": 32,
    "rpn_pre_nms_top_n_test": 64,
    "rpn_post_nms_top_n_test": 32,
    "box_batch_size_per_image": 32,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _task(name: str = "detection"):
    from visiontl.plugin_manager import get_plugins

    return api.resolve_task(get_plugins(), name)


def _recipe(root: Path, out: Path, task: str = "detection", model: str = "torchvision:fasterrcnn", **sections: dict) -> dict:
    recipe = {
        "task": task,
        "data": {"format": "coco", "root": str(root), "train": "annotations.json", "images": "images", "val": None, "val_last": 3},
        "model": {"id": model, "options": dict(SQUEEZE)},
        "strategy": {"name": "feature_extraction"},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "augmentation": {"preset": "light"},
        "train": {"epochs": 1, "batch_size": 2, "progress": False},
        "output": {"dir": str(out), "name": "t"},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return recipe


def test_both_tasks_are_registered_with_map_as_primary_metric() -> None:
    det, seg = _task("detection"), _task("instance_segmentation")
    assert (det.masks, seg.masks) == (False, True)
    assert det.primary_metric == seg.primary_metric == "map" and det.formats == ("coco", "yolo")


def test_inspect_reports_bad_labels_and_counts_objects(tmp_path: Path) -> None:
    make_coco(tmp_path / "ds", n=6)
    data = json.loads((tmp_path / "ds" / "annotations.json").read_text())
    data["annotations"].append({"id": 99, "image_id": 100, "category_id": 3, "bbox": [500, 500, 5, 5]})
    data["annotations"].append({"id": 98, "image_id": 100, "category_id": 42, "bbox": [1, 1, 5, 5]})
    write_json(tmp_path / "ds" / "annotations.json", data)
    recipe = validate_recipe(_recipe(tmp_path / "ds", tmp_path / "runs"), "test")
    info = _task().inspect(recipe, tmp_path)
    path = tmp_path / "ds" / "annotations.json"
    assert info.skipped == {
        f"{path}:annotation 99": "box [500, 500, 505, 505] lies entirely outside the 96x64 image; object dropped",
        f"{path}:annotation 98": "category_id 42 is not one of the categories (3, 90); object dropped",
    }
    assert info.class_names == ["red", "green"]
    assert info.extras["images"] == {"train": 3, "val": 3} and len(info.extras["val_records"]) == 3
    objects = sum(len(r) for r in info.extras["train_records"])
    assert sum(info.counts["train"].values()) == objects


def test_collate_drops_unreadable_items_and_moves_paths_out_of_targets() -> None:
    from visiontl.data.classification import Unreadable

    task = _task()
    batch = task.example_batch(2, (32, 40), 2)
    items = [(batch.inputs[0], {**batch.targets[0], "path": "a.png"}), Unreadable(1, "b.png", "corrupt image: x")]
    out = task.collate(items)
    assert out.paths == ["a.png"] and out.indices == [0] and out.skipped == {"b.png": "corrupt image: x"}
    assert "path" not in out.targets[0] and isinstance(out.inputs, list)
    moved = task.move_batch(out, torch.device("cpu"))
    assert moved.targets[0]["boxes"].device.type == "cpu"


def test_loss_terms_are_summed_with_weights_and_checked(tmp_path: Path) -> None:
    task = _task()
    info = type("Info", (), {})()
    recipe = validate_recipe(_recipe(tmp_path, tmp_path, loss={"terms": {"loss_box_reg": 2.0}}), "t")
    loss = task.loss_function(recipe, info)
    terms = {"loss_classifier": torch.tensor(1.0), "loss_box_reg": torch.tensor(0.5)}
    assert float(loss(terms, None)) == pytest.approx(2.0)
    bad = task.loss_function(validate_recipe(_recipe(tmp_path, tmp_path, loss={"terms": {"loss_mask": 1.0}}), "t"), info)
    with pytest.raises(ConfigError, match="loss.terms names 'loss_mask', which this model does not compute.*loss_box_reg, loss_classifier"):
        bad(terms, None)
    with pytest.raises(ConfigError, match="loss.name 'focal' is not a detection loss"):
        task.loss_function(validate_recipe(_recipe(tmp_path, tmp_path, loss={"name": "focal"}), "t"), info)
    with pytest.raises(ConfigError, match="label_smoothing and loss.class_weights are classification settings"):
        task.loss_function(validate_recipe(_recipe(tmp_path, tmp_path, loss={"label_smoothing": 0.1}), "t"), info)


def test_check_outputs_rejects_outputs_off_the_contract() -> None:
    task = _task("instance_segmentation")
    batch = task.example_batch(2, (32, 40), 1)
    good = [{"boxes": torch.zeros(1, 4), "scores": torch.ones(1), "labels": torch.zeros(1, dtype=torch.int64), "masks": torch.zeros(1, 32, 40)}]
    task.check_outputs(good, 2, batch)
    with pytest.raises(AssertionError, match="labels must be 0-based class indices below 2"):
        task.check_outputs([{**good[0], "labels": torch.tensor([2])}], 2, batch)
    with pytest.raises(AssertionError, match=r"masks must be \[K, H, W\]"):
        task.check_outputs([{**good[0], "masks": torch.zeros(1, 1, 32, 40)}], 2, batch)
    with pytest.raises(AssertionError, match="outputs lack"):
        task.check_outputs([{"boxes": torch.zeros(0, 4)}], 2, batch)


def test_draw_puts_boxes_and_masks_on_the_picture() -> None:
    from PIL import Image

    from visiontl.data.detection.masks import mask_to_rle

    task = _task("instance_segmentation")
    image = Image.fromarray(np.full((60, 80, 3), 128, dtype=np.uint8))
    mask = np.zeros((60, 80), dtype=np.uint8)
    mask[20:40, 30:50] = 1
    result = PredictionResult([("red", 0.9)], {"boxes": [[10.0, 10.0, 50.0, 45.0]], "scores": [0.9], "classes": ["red"], "masks": [mask_to_rle(mask)]})
    drawn = np.asarray(task.draw(image, result, ["red", "green"]))
    assert drawn.shape == (60, 80, 3)
    assert (drawn[10, 20] != 128).any()  # on the box's top edge
    assert (drawn[30, 40] != 128).any() and (drawn[5, 5] == 128).all()  # inside the mask; far outside


def test_a_detection_run_end_to_end(tmp_path: Path) -> None:
    make_coco(tmp_path / "ds", n=8)
    data = json.loads((tmp_path / "ds" / "annotations.json").read_text())
    data["annotations"].append({"id": 99, "image_id": 101, "category_id": 3, "bbox": [10, 10, 0, 5]})
    write_json(tmp_path / "ds" / "annotations.json", data)
    outcome = api.run(validate_recipe(_recipe(tmp_path / "ds", tmp_path / "runs"), "t"), data_root=tmp_path)
    run = outcome.run_dir
    summary = json.loads((run / "summary.json").read_text())
    assert summary["primary_metric"] == "map" and 0.0 <= summary["final"]["map"] <= 1.0
    assert {"map50", "map75", "num_images"} <= set(summary["final"]) and summary["final"]["num_images"] == 3
    assert summary["data"]["skipped_count"] == 1
    assert summary["data"]["details"] == {
        "format": "coco",
        "images": {"train": 5, "val": 3},
        "images_without_objects": {"train": 0, "val": 0},
        "label_problems": 1,
        "category_map": {"ids": [3, 90], "names": ["red", "green"]},
    }
    assert summary["data"]["skipped"] == {f"{tmp_path / 'ds' / 'annotations.json'}:annotation 99": "box [10, 10, 10, 15] has zero area; object dropped"}
    assert summary["audits"][0]["ok"] and summary["audits"][0]["params_checked"] > 0
    assert set(summary["final_details"]["map_per_class"]) == {"red", "green"}
    assert "map" in (run / "metrics.csv").read_text().splitlines()[0].split(",")
    report = (run / "report.md").read_text()
    assert "| class | box AP | val objects |" in report and "Images: train 5 (0 without objects), val 3" in report
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "checkpoints" / "last.pt").is_file()

    preds = api.predict(run, [tmp_path / "ds" / "images" / "img_07.png"], score_threshold=0.0, out_dir=tmp_path / "pred")
    p = preds[0]
    assert p.error is None and p.overlay == str(tmp_path / "pred" / "img_07.png.png")
    assert len(p.details["boxes"]) == len(p.top) and all(0 <= s <= 1 for s in p.details["scores"])
    assert all(name in ("red", "green") for name, _ in p.top)

    metrics = api.evaluate(run, data_root=tmp_path)
    assert metrics["num_images"] == 3 and metrics["map"] == pytest.approx(summary["final"]["map"], abs=1e-6)


def test_an_instance_segmentation_run_with_masks(tmp_path: Path) -> None:
    make_coco(tmp_path / "ds", n=6)
    recipe = _recipe(tmp_path / "ds", tmp_path / "runs", task="instance_segmentation", model="torchvision:maskrcnn", data={"val_last": 2})
    outcome = api.run(validate_recipe(recipe, "t"), data_root=tmp_path)
    final = outcome.summary["final"]
    assert {"map", "mask_map", "mask_map50"} <= set(final)
    plan = json.loads((outcome.run_dir / "plan.json").read_text())
    assert [s["name"] for s in plan["phases"][0]["settings"]][-3:] == ["rpn", "box_head", "mask_head"]
    preds = api.predict(outcome.run_dir, [tmp_path / "ds" / "images" / "img_05.png"], score_threshold=0.0, out_dir=tmp_path / "pred")
    assert "masks" in preds[0].details and len(preds[0].details["masks"]) == len(preds[0].top)
    assert Path(preds[0].overlay).is_file()


def test_faster_rcnn_trains_a_step_from_coco128_yolo_labels(shared_data: Path, tmp_path: Path) -> None:
    recipe = validate_recipe(
        {
            "task": "detection",
            "data": {"format": "yolo", "root": "coco128", "yaml": "data.yaml", "limit": 4, "image_size": 128},
            "model": {"id": "torchvision:fasterrcnn", "options": SQUEEZE},
            "output": {"dir": str(tmp_path)},
        },
        "t",
    )
    prepared = api.prepare(recipe, data_root=shared_data)
    assert len(prepared.info.class_names) == 80 and prepared.info.skipped  # the quirks are reported
    train, _ = prepared.task.datasets(recipe, prepared.info, prepared.built.preprocessing, shared_data)
    batch: Batch = prepared.task.collate([train[i] for i in range(2)])
    assert all(max(im.shape[-2:]) == 128 for im in batch.inputs)
    model = prepared.built.model
    model.train()
    loss_fn = prepared.task.loss_function(recipe, prepared.info)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    loss, terms = prepared.task.forward_train(model, batch, loss_fn)
    assert torch.isfinite(loss) and {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} == set(terms)
    loss.backward()
    optimizer.step()


# Offline here: the COCO recipes run from random weights, which need trainable BatchNorm
# (a randomly initialised FrozenBatchNorm2d backbone does not normalise at all), and skip
# their 170 MB checkpoints (the SqueezeNet recipe writes and reuses its own).
COCO = ["model.pretrained=false", "model.options.frozen_bn=false", "output.checkpoints=false"]
RECIPES = {
    "detect_accurate.yaml": [*COCO, "strategy.phase_epochs=[1,1,1]"],
    "instance_seg.yaml": [*COCO, "strategy.phases.0.epochs=1", "strategy.phases.1.epochs=1"],
    "detect_pennfudan_squeezenet.yaml": ["train.epochs=1"],
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_shipped_recipes_run_with_a_smoke_override(name: str, shared_data: Path, tmp_path: Path) -> None:
    smoke = [
        "data.limit=2",
        "data.val_last=2",
        "data.image_size=96",
        "model.options.min_size=64",
        "model.options.max_size=96",
        "model.options.rpn_pre_nms_top_n_train=64",
        "model.options.rpn_post_nms_top_n_train=32",
        "model.options.rpn_pre_nms_top_n_test=64",
        "model.options.rpn_post_nms_top_n_test=32",
        "model.options.box_batch_size_per_image=32",
        "train.progress=false",
        f"output.dir={tmp_path}",
    ]
    recipe = load_recipe(ROOT / "recipes" / name, [*RECIPES[name], *smoke])
    outcome = api.run(recipe, data_root=shared_data)
    assert outcome.summary["task"] in ("detection", "instance_segmentation")
    assert all(a["ok"] for a in outcome.summary["audits"])
    assert outcome.summary["data"]["counts"]["val"]["person"] > 0
    if name == "detect_pennfudan_squeezenet.yaml":
        assert outcome.summary["weights"]["source"].startswith("backbone torchvision:squeezenet1_1 file:")
        # predict and eval rebuild the model without the backbone file (another data root).
        preds = api.predict(outcome.run_dir, [shared_data / "pennfudan" / "images" / "PennPed00096.png"], out_dir=tmp_path / "p")
        assert preds[0].error is None and Path(preds[0].overlay).is_file()
        assert api.evaluate(outcome.run_dir, data_root=shared_data)["num_images"] == 2
