"""Predicting batch-1 latency from a card's MAC profile.

The model is linear in a few counts that dominate latency on real hardware::

    ms = c0 + c_layers * layers + c_dense * (GMACs - depthwise_GMACs)
            + c_dw * depthwise_GMACs + c_act * activations_M

with non-negative coefficients, fitted by weighted non-negative least squares that minimises
relative error. A fit is per device: published latencies (``python -m visiontl.selection.fit``)
or this machine's own measurements (``visiontl select --calibrate``). Depthwise convolutions
and many small layers cost more per MAC than dense ones; a MAC-only model misses that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from visiontl.cards import MacProfile

FEATURES = ("const", "layers", "dense", "depthwise", "activations")


def features(profile: MacProfile) -> np.ndarray:
    """The feature vector of a profile (GMACs, millions of activations).

    Every MAC that is not depthwise counts as dense: attention matmuls and functional
    linear layers (which module hooks do not see) cost like dense layers.
    """
    return np.array(
        [1.0, profile.layers, (profile.macs - profile.depthwise) / 1e9, profile.depthwise / 1e9, profile.activations / 1e6],
        dtype=np.float64,
    )


def nnls(a: np.ndarray, b: np.ndarray, iterations: int = 500) -> np.ndarray:
    """Non-negative least squares (Lawson-Hanson active set): ``argmin ||a x - b||, x >= 0``."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = a.T @ (b - a @ x)
    for _ in range(iterations):
        if passive.all() or w[~passive].max(initial=-np.inf) <= 1e-12:
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            mask = passive & (z <= 0)
            alpha = np.min(x[mask] / (x[mask] - z[mask]))
            x = x + alpha * (z - x)
            passive &= x > 1e-12
        w = a.T @ (b - a @ x)
    return x


@dataclass
class LatencyModel:
    """Coefficients for one device, with where they came from.

    Attributes:
        name: the device key (``i9``, ``a100``, ``local``).
        coefficients: one per :data:`FEATURES`.
        basis: a short provenance line shown next to every prediction.
        scale: a factor applied on top (for targets derived from another device).
        fit_error: median absolute relative error of the fit on its own data.
        samples: how many (model, latency) pairs it was fitted on.
    """

    name: str
    coefficients: dict[str, float]
    basis: str
    scale: float = 1.0
    fit_error: float | None = None
    samples: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    def predict(self, profile: MacProfile | None) -> float | None:
        """Predicted milliseconds at batch 1, or ``None`` when the card has no profile."""
        if profile is None:
            return None
        coef = np.array([self.coefficients.get(f, 0.0) for f in FEATURES])
        return float(features(profile) @ coef) * self.scale

    def scaled(self, factor: float, basis: str) -> LatencyModel:
        return LatencyModel(self.name, dict(self.coefficients), basis, self.scale * factor, self.fit_error, self.samples)


def fit(pairs: Sequence[tuple[MacProfile, float]], name: str, basis: str) -> LatencyModel:
    """Fit a model to ``(profile, milliseconds)`` pairs, minimising relative error."""
    if len(pairs) < 3:
        raise ValueError(f"a latency fit needs at least 3 measured models, got {len(pairs)}")
    a = np.stack([features(p) for p, _ in pairs])
    t = np.array([ms for _, ms in pairs], dtype=np.float64)
    # Columns are scaled to unit norm for conditioning; rows by 1/t so errors are relative.
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    weighted = (a / norms) / t[:, None]
    x = nnls(weighted, np.ones_like(t)) / norms
    predicted = a @ x
    error = float(np.median(np.abs(predicted - t) / t))
    return LatencyModel(name, dict(zip(FEATURES, map(float, x), strict=True)), basis, fit_error=error, samples=len(pairs))
