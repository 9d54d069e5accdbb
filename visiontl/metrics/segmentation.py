"""Semantic segmentation metrics from a pixel confusion matrix (numpy; no torch needed).

Every metric is derived from one matrix ``cm[true, predicted]`` of pixel counts, built from
the pixels whose label is not ``ignore_index``. A class that appears neither in the labels nor
in the predictions has no defined IoU or Dice (``nan``) and is left out of the means, as in
the PASCAL VOC and Cityscapes evaluations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(target: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """``cm[true, predicted]`` pixel counts over the pixels whose label is not ``ignore_index``.

    Args:
        target: integer labels of any shape.
        pred: predicted class indices, same shape, in ``0..num_classes-1``.
        num_classes: ``C``.
        ignore_index: label value left out of the matrix (``None``: none).

    Raises:
        ValueError: shapes differ, or a label (other than ``ignore_index``) or a prediction is
            outside ``0..C-1``.

    Example:
        >>> confusion_matrix(np.array([0, 1, 255]), np.array([0, 0, 1]), 2).tolist()
        [[1, 0], [1, 0]]
    """
    target = np.asarray(target).reshape(-1).astype(np.int64)
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    if target.shape != pred.shape:
        raise ValueError(f"target has {target.size} pixels but pred has {pred.size}")
    keep = target != ignore_index if ignore_index is not None else np.ones_like(target, dtype=bool)
    target, pred = target[keep], pred[keep]
    if target.size and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"labels outside 0..{num_classes - 1} (and not ignore_index {ignore_index}): {sorted(set(target.tolist()) - set(range(num_classes)))[:5]}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"predictions outside 0..{num_classes - 1}")
    return np.bincount(target * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """IoU, Dice (= F1), precision, recall and pixel support per class; ``nan`` where undefined.

    IoU = TP / (TP + FP + FN) and Dice = 2 TP / (2 TP + FP + FN) are undefined for a class with
    no labelled and no predicted pixel; precision for a class never predicted; recall for a
    class never labelled.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    labelled = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    union = labelled + predicted - tp

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        out = np.full_like(num, np.nan)
        np.divide(num, den, out=out, where=den > 0)
        return out

    return {
        "iou": ratio(tp, union),
        "dice": ratio(2 * tp, labelled + predicted),
        "precision": ratio(tp, predicted),
        "recall": ratio(tp, labelled),
        "support": labelled,
    }


def metric_key(name: str) -> str:
    """A class name as a metric-key suffix: ``traffic light`` -> ``traffic_light``."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "class"


#: Per-class IoU is added as scalar ``iou_<class>`` columns (metrics.csv, ``eval.metric``) for
#: datasets with at most this many classes; larger ones keep it in ``per_class`` only.
MAX_SCALAR_CLASSES = 20


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def segmentation_metrics(cm: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """mIoU, per-class IoU, Dice/F1, pixel accuracy and the confusion matrix.

    Args:
        cm: ``C x C`` pixel confusion matrix (rows true, columns predicted), ignored pixels
            already left out (:func:`confusion_matrix`).
        class_names: the ``C`` class names.

    Returns:
        ``miou`` and ``mean_dice`` (means over classes with a defined value), ``pixel_accuracy``
        (correct / labelled pixels), ``mean_accuracy`` (mean recall over labelled classes),
        ``fw_iou`` (IoU weighted by each class's labelled pixels), ``per_class`` (iou, dice,
        precision, recall, pixels; ``None`` where undefined), ``confusion_matrix``,
        ``num_pixels``, and ``iou_<class>`` scalars when there are at most
        :data:`MAX_SCALAR_CLASSES` classes.
    """
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix {cm.shape} does not fit {len(class_names)} classes")
    per = per_class_scores(cm)
    total = int(cm.sum())
    labelled = per["support"]
    freq = labelled / total if total else labelled
    iou = per["iou"]
    defined = ~np.isnan(iou)
    out: dict[str, Any] = {
        "miou": _nanmean(iou),
        "mean_dice": _nanmean(per["dice"]),
        "pixel_accuracy": float(np.trace(cm) / total) if total else float("nan"),
        "mean_accuracy": _nanmean(per["recall"]),
        "fw_iou": float((freq[defined] * iou[defined]).sum()) if total else float("nan"),
        "num_pixels": total,
    }
    if len(class_names) <= MAX_SCALAR_CLASSES:
        for i, name in enumerate(class_names):
            out[f"iou_{metric_key(name)}"] = float(iou[i])

    def clean(value: float) -> float | None:
        return None if math.isnan(value) else float(value)

    out["per_class"] = {
        name: {
            "iou": clean(iou[i]),
            "dice": clean(per["dice"][i]),
            "precision": clean(per["precision"][i]),
            "recall": clean(per["recall"][i]),
            "pixels": int(labelled[i]),
        }
        for i, name in enumerate(class_names)
    }
    out["confusion_matrix"] = cm.tolist()
    return out
