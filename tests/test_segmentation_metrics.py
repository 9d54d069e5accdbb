"""Segmentation metrics and losses against independent reference computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from visiontl.errors import ConfigError
from visiontl.losses.segmentation import (
    SegmentationLoss,
    cross_entropy,
    dice_loss,
    focal_loss,
    loss_terms,
)
from visiontl.metrics.segmentation import confusion_matrix, segmentation_metrics
from visiontl.tasks.segmentation import SegmentationEvaluator

IGNORE = 255


def reference(target: np.ndarray, pred: np.ndarray, num_classes: int, ignore: int) -> dict:
    """Per-class set arithmetic on pixel coordinates, written without a confusion matrix."""
    coords = [tuple(c) for c in np.argwhere(np.ones_like(target, dtype=bool))]
    valid = {c for c in coords if target[c] != ignore}
    out = {"iou": [], "dice": [], "labelled": []}
    for k in range(num_classes):
        t = {c for c in valid if target[c] == k}
        p = {c for c in valid if pred[c] == k}
        union = t | p
        out["iou"].append(len(t & p) / len(union) if union else math.nan)
        out["dice"].append(2 * len(t & p) / (len(t) + len(p)) if (t or p) else math.nan)
        out["labelled"].append(len(t))
    correct = sum(1 for c in valid if target[c] == pred[c])
    out["pixel_accuracy"] = correct / len(valid)
    defined = [v for v in out["iou"] if not math.isnan(v)]
    out["miou"] = sum(defined) / len(defined)
    dice = [v for v in out["dice"] if not math.isnan(v)]
    out["mean_dice"] = sum(dice) / len(dice)
    return out


def random_masks(seed: int, shape=(3, 17, 13), num_classes=4, absent=None):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, num_classes, shape)
    pred = rng.integers(0, num_classes, shape)
    target[rng.random(shape) < 0.2] = IGNORE  # ignored pixels, with arbitrary predictions under them
    if absent is not None:  # a class neither labelled nor predicted
        target[target == absent] = IGNORE
        pred[pred == absent] = (absent + 1) % num_classes
    return target, pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_set_arithmetic_with_ignored_pixels(seed):
    target, pred = random_masks(seed, absent=3 if seed == 2 else None)
    names = ["a", "b", "c", "d"]
    got = segmentation_metrics(confusion_matrix(target, pred, 4, IGNORE), names)
    ref = reference(target, pred, 4, IGNORE)
    assert got["miou"] == pytest.approx(ref["miou"])
    assert got["mean_dice"] == pytest.approx(ref["mean_dice"])
    assert got["pixel_accuracy"] == pytest.approx(ref["pixel_accuracy"])
    assert got["num_pixels"] == int((target != IGNORE).sum())
    for i, name in enumerate(names):
        row = got["per_class"][name]
        if math.isnan(ref["iou"][i]):
            assert row["iou"] is None and row["dice"] is None and math.isnan(got[f"iou_{name}"])
        else:
            assert row["iou"] == pytest.approx(ref["iou"][i])
            assert got[f"iou_{name}"] == pytest.approx(ref["iou"][i])
            assert row["dice"] == pytest.approx(ref["dice"][i])
        assert row["pixels"] == ref["labelled"][i]


def test_ignored_pixels_change_nothing_whatever_is_predicted_there():
    target, pred = random_masks(5)
    other = pred.copy()
    other[target == IGNORE] = (other[target == IGNORE] + 1) % 4
    assert np.array_equal(confusion_matrix(target, pred, 4, IGNORE), confusion_matrix(target, other, 4, IGNORE))


def test_confusion_matrix_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 5]), np.array([0, 1]), 2, IGNORE)


def test_evaluator_agrees_with_the_reference_on_logits_of_mixed_sizes():
    rng = np.random.default_rng(7)
    evaluator = SegmentationEvaluator(["a", "b", "c"], IGNORE)
    targets, preds = [], []
    for h, w in ((9, 11), (6, 6)):
        t = rng.integers(0, 3, (h, w))
        t[rng.random((h, w)) < 0.25] = IGNORE
        logits = torch.tensor(rng.normal(size=(3, h, w)), dtype=torch.float32)
        evaluator.update([logits], [torch.tensor(t)])
        targets.append(t.reshape(-1))
        preds.append(logits.argmax(0).numpy().reshape(-1))
    got = evaluator.compute()
    ref = reference(np.concatenate(targets), np.concatenate(preds), 3, IGNORE)
    assert got["miou"] == pytest.approx(ref["miou"])
    assert got["pixel_accuracy"] == pytest.approx(ref["pixel_accuracy"])
    assert got["num_images"] == 2 and math.isfinite(got["val_loss"])


# --------------------------------------------------------------------------- losses


def batch(seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 8, 8, generator=g, requires_grad=True)
    target = torch.randint(0, classes, (2, 8, 8), generator=g)
    target[:, :3, :3] = IGNORE
    return logits, target


def test_cross_entropy_leaves_ignored_pixels_out_and_weights_classes():
    logits, target = batch()
    weight = torch.tensor([1.0, 2.0, 0.5])
    valid = target != IGNORE
    per_pixel = -torch.log_softmax(logits, 1).gather(1, target.clamp(max=2).unsqueeze(1)).squeeze(1)
    w = weight[target.clamp(max=2)] * valid
    expected = (per_pixel * w).sum() / w.sum()
    assert cross_entropy(logits, target, weight=weight, ignore_index=IGNORE).item() == pytest.approx(expected.item(), rel=1e-5)


def test_focal_with_gamma_zero_is_cross_entropy_and_downweights_easy_pixels():
    logits, target = batch(1)
    weight = torch.tensor([0.5, 1.0, 3.0])
    ce = cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
    assert focal_loss(logits, target, gamma=0.0, weight=weight, ignore_index=IGNORE).item() == pytest.approx(ce.item(), rel=1e-5)
    assert focal_loss(logits, target, gamma=2.0, ignore_index=IGNORE) < cross_entropy(logits, target, ignore_index=IGNORE)


def test_dice_is_zero_for_a_perfect_prediction_and_ignores_ignored_pixels():
    _, target = batch(2)
    perfect = F.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 50
    perfect[:, :, :3, :3] = torch.tensor([0.0, 0.0, 50.0]).view(1, 3, 1, 1)  # "wrong" only where ignored
    assert dice_loss(perfect, target, ignore_index=IGNORE, smooth=0.0).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_loss(-perfect, target, ignore_index=IGNORE).item() > 0.9


def test_every_loss_is_zero_not_nan_when_every_pixel_is_ignored():
    logits, _ = batch()
    target = torch.full((2, 8, 8), IGNORE)
    for name in ("cross_entropy", "dice", "focal"):
        value = SegmentationLoss([(name, 1.0)], ignore_index=IGNORE)(logits, target)
        assert value.item() == 0.0
        value.backward()


def test_weighted_sum_resizing_and_auxiliary_outputs():
    logits, target = batch(3)
    loss = SegmentationLoss(loss_terms("auto", {"cross_entropy": 1.0, "dice": 0.5}), ignore_index=IGNORE)
    expected = cross_entropy(logits, target, ignore_index=IGNORE) + 0.5 * dice_loss(logits, target, ignore_index=IGNORE)
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)
    small = logits[:, :, ::2, ::2]  # half-size logits are resized to the labels
    assert torch.isfinite(loss(small, target))
    with_aux = loss({"out": logits, "aux": logits}, target)
    assert with_aux.item() == pytest.approx(1.5 * loss(logits, target).item(), rel=1e-5)


def test_loss_names_are_checked_with_did_you_mean():
    assert loss_terms("ce", None) == [("cross_entropy", 1.0)]
    with pytest.raises(ConfigError, match="Did you mean 'dice'"):
        loss_terms("dise", None)
    with pytest.raises(ConfigError, match="focal"):
        loss_terms("auto", {"focall": 1.0})
