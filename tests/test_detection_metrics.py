"""The detection evaluator: ground truth as predictions scores 1.0, and small cases whose
COCO mAP is computed here by hand."""

from __future__ import annotations

import pytest
import torch

from visiontl.errors import DataError
from visiontl.metrics.detection import DetectionEvaluator


def _target(boxes: list[list[float]], labels: list[int], crowd: list[int] | None = None, masks: torch.Tensor | None = None) -> dict:
    t = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "iscrowd": torch.tensor(crowd or [0] * len(labels), dtype=torch.int64),
    }
    if masks is not None:
        t["masks"] = masks
    return t


def _output(boxes: list[list[float]], scores: list[float], labels: list[int], masks: torch.Tensor | None = None) -> dict:
    o = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }
    if masks is not None:
        o["masks"] = masks
    return o


def _box_masks(boxes: list[list[int]], h: int = 40, w: int = 50) -> torch.Tensor:
    m = torch.zeros(len(boxes), h, w, dtype=torch.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        m[i, y1:y2, x1:x2] = 1
    return m


def test_ground_truth_fed_back_as_predictions_scores_one() -> None:
    g = torch.Generator().manual_seed(0)
    ev = DetectionEvaluator(["a", "b", "c"], masks=True)
    for _ in range(5):
        n = 4
        xy = torch.randint(0, 30, (n, 2), generator=g)
        wh = torch.randint(5, 20, (n, 2), generator=g)
        boxes = torch.cat([xy, (xy + wh).clamp(max=torch.tensor([50, 40]))], dim=1).tolist()
        labels = torch.randint(0, 3, (n,), generator=g).tolist()
        masks = _box_masks(boxes)
        crowd = [0, 0, 0, 1]
        target = _target(boxes, labels, crowd, masks)
        keep = [i for i in range(n) if not crowd[i]]
        # Soft [K, 1, H, W] masks, as torchvision returns them.
        pred = _output([boxes[i] for i in keep], [1.0] * len(keep), [labels[i] for i in keep], masks[keep].float().unsqueeze(1) * 0.9)
        ev.update([pred], [target])
    m = ev.compute()
    assert m["map"] == pytest.approx(1.0) and m["map50"] == pytest.approx(1.0) and m["map75"] == pytest.approx(1.0)
    assert m["mask_map"] == pytest.approx(1.0) and m["mask_map50"] == pytest.approx(1.0)
    present = {n for n, v in m["map_per_class"].items() if v is not None}
    assert present and all(m["map_per_class"][n] == pytest.approx(1.0) for n in present)
    assert m["num_images"] == 5 and m["num_objects"] == 15


def test_one_box_at_iou_072_is_found_at_five_of_ten_thresholds() -> None:
    # GT [0, 0, 10, 10] (area 100) and a prediction [0, 0, 10, 7.2]: IoU 72 / 100 = 0.72, a
    # true positive at IoU 0.50, 0.55, 0.60, 0.65, 0.70 and a miss at 0.75 ... 0.95.
    ev = DetectionEvaluator(["a"])
    ev.update([_output([[0, 0, 10, 7.2]], [0.9], [0])], [_target([[0, 0, 10, 10]], [0])])
    m = ev.compute()
    assert m["map50"] == pytest.approx(1.0) and m["map75"] == pytest.approx(0.0)
    assert m["map"] == pytest.approx(0.5)


def test_a_higher_scored_false_positive_halves_precision() -> None:
    # Ranked: a false positive (0.9), then the exact box (0.8). Precision at recall 1 is 1/2,
    # and COCO's interpolated precision is 0.5 at every recall level: AP = 0.5.
    ev = DetectionEvaluator(["a"])
    ev.update([_output([[60, 60, 80, 80], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])], [_target([[0, 0, 10, 10]], [0])])
    m = ev.compute()
    assert m["map50"] == pytest.approx(0.5) and m["map"] == pytest.approx(0.5)


def test_per_class_ap_and_classes_absent_from_the_ground_truth() -> None:
    # Class a found exactly, class b predicted as class a (so b is missed and a gets a false
    # positive ranked below its true positive: a keeps AP 1), class c has no object at all.
    ev = DetectionEvaluator(["a", "b", "c"])
    ev.update(
        [_output([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.5], [0, 0])],
        [_target([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1])],
    )
    m = ev.compute()
    assert m["map_per_class"] == {"a": pytest.approx(1.0), "b": pytest.approx(0.0), "c": None}
    assert m["map"] == pytest.approx(0.5)  # the mean over the classes that have objects


def test_detections_on_crowd_regions_are_not_false_positives() -> None:
    # Without crowd handling the 0.9 detection would be a false positive ranked first (AP 0.5).
    ev = DetectionEvaluator(["a"])
    ev.update(
        [_output([[40, 0, 60, 20], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])],
        [_target([[0, 0, 10, 10], [30, 0, 70, 30]], [0, 0], crowd=[0, 1])],
    )
    assert ev.compute()["map"] == pytest.approx(1.0)


def test_mask_ap_differs_from_box_ap_when_masks_differ() -> None:
    # The box is right, the mask covers only the top 60 % of the object: mask IoU 0.6.
    gt = _box_masks([[0, 0, 20, 20]])
    pred = _box_masks([[0, 0, 20, 12]])
    ev = DetectionEvaluator(["a"], masks=True)
    ev.update([_output([[0, 0, 20, 20]], [0.9], [0], pred)], [_target([[0, 0, 20, 20]], [0], masks=gt)])
    m = ev.compute()
    assert m["map"] == pytest.approx(1.0)
    assert m["mask_map50"] == pytest.approx(1.0) and m["mask_map"] == pytest.approx(0.3)  # 0.50, 0.55, 0.60 of 10


def test_no_predictions_score_zero_and_no_images_is_an_error() -> None:
    ev = DetectionEvaluator(["a"])
    ev.update([_output([], [], [])], [_target([[0, 0, 10, 10]], [0])])
    m = ev.compute()
    assert m["map"] == 0.0 and m["num_predictions"] == 0
    with pytest.raises(DataError, match="The validation set produced no predictions"):
        DetectionEvaluator(["a"]).compute()


def test_only_negatives_leave_map_undefined() -> None:
    ev = DetectionEvaluator(["a"])
    ev.update([_output([[0, 0, 5, 5]], [0.5], [0])], [_target([], [])])
    m = ev.compute()
    assert m["map"] is None and m["map_per_class"] == {"a": None}
