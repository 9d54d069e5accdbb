"""Multi-label metrics (numpy only): average precision per class, F1 at a threshold, exact match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve of one class, as a step function.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct scores in decreasing order (the
    definition scikit-learn's ``average_precision_score`` uses; tied scores form one step).
    ``nan`` when the class has no positive.
    """
    positives = float(targets.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], targets[order]
    # The last index of each run of equal scores: one threshold per distinct score.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(t)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def multilabel_metrics(targets: np.ndarray, probs: np.ndarray, class_names: Sequence[str], threshold: float = 0.5) -> dict[str, Any]:
    """Every metric of the multilabel task.

    Args:
        targets: ``(N, C)`` 0/1 labels.
        probs: ``(N, C)`` probabilities (sigmoid outputs).
        class_names: the ``C`` names.
        threshold: probability at or above which a label is predicted.

    Returns:
        ``map`` (mean AP over classes with a positive), ``f1_micro``, ``f1_macro``,
        ``exact_match`` (share of images with every label right), ``per_class`` rows.
    """
    targets = targets.astype(np.float64)
    preds = (probs >= threshold).astype(np.float64)
    tp = (preds * targets).sum(axis=0)
    fp = (preds * (1 - targets)).sum(axis=0)
    fn = ((1 - preds) * targets).sum(axis=0)
    support = targets.sum(axis=0)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    ap = np.array([average_precision(targets[:, c], probs[:, c]) for c in range(targets.shape[1])])
    present = support > 0
    micro_den = 2 * tp.sum() + fp.sum() + fn.sum()
    return {
        "map": float(np.nanmean(ap)) if present.any() else 0.0,
        "f1_micro": float(2 * tp.sum() / micro_den) if micro_den > 0 else 0.0,
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        "exact_match": float((preds == targets).all(axis=1).mean()) if len(targets) else 0.0,
        "per_class": {
            name: {
                "ap": None if np.isnan(ap[i]) else float(ap[i]),
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
    }
