"""Classification metrics from a confusion matrix and top-k hits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[true, predicted]`` counts."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (targets.astype(np.int64), preds.astype(np.int64)), 1)
    return cm


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class (0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    actual = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


def classification_metrics(
    targets: np.ndarray, scores: np.ndarray, class_names: Sequence[str], topk: int = 5
) -> dict[str, Any]:
    """Accuracy, top-k accuracy, macro and per-class precision/recall/F1, confusion matrix.

    Args:
        targets: ``(N,)`` true labels.
        scores: ``(N, C)`` logits or probabilities.
        class_names: names of the ``C`` classes.
        topk: k of the top-k accuracy (capped at ``C``).
    """
    n, c = scores.shape
    preds = scores.argmax(axis=1)
    cm = confusion_matrix(targets, preds, c)
    per = per_class_scores(cm)
    k = min(topk, c)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    topk_hits = (top == targets[:, None]).any(axis=1)
    present = per["support"] > 0
    return {
        "accuracy": float((preds == targets).mean()) if n else 0.0,
        f"top{k}_accuracy": float(topk_hits.mean()) if n else 0.0,
        "macro_precision": float(per["precision"][present].mean()) if present.any() else 0.0,
        "macro_recall": float(per["recall"][present].mean()) if present.any() else 0.0,
        "macro_f1": float(per["f1"][present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {
                "precision": float(per["precision"][i]),
                "recall": float(per["recall"][i]),
                "f1": float(per["f1"][i]),
                "support": int(per["support"][i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
        "num_samples": int(n),
    }
