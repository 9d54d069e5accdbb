"""Classification post-processing: softmax, top-k, and the cross-entropy ``visiontl eval`` reports."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities of ``logits`` along ``axis`` (float32, numerically stable)."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest of a ``[C]`` vector, best first (ties keep class order): ``(indices, values)``."""
    order = np.argsort(-np.asarray(probs), kind="stable")[: max(0, min(int(k), len(probs)))]
    return order, np.asarray(probs)[order]


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy of ``[N, C]`` logits against ``[N]`` class indices."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), np.asarray(targets, dtype=np.int64)].mean())
