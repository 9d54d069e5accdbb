"""Fitting the per-device latency models on published figures.

``python -m visiontl.selection.fit`` gathers every card whose published latency was taken on a
reference device, fits the coefficients of :mod:`visiontl.selection.latency`, and writes them to
``latency_fits.json`` beside this file with the figures it used. A test refits and compares,
so the committed coefficients always match the catalogue.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from visiontl.cards import ModelCard
from visiontl.selection.latency import LatencyModel, fit

FITS = Path(__file__).resolve().parent / "latency_fits.json"

#: Reference devices: key -> (substring of a published latency's device, description).
DEVICES: dict[str, tuple[str, str]] = {
    "i9": ("Intel Core i9-10940X", "Intel Core i9-10940X CPU, fp32, batch 1, torch.compile (timm benchmark.py)"),
    "a100": ("A100 TensorRT", "NVIDIA A100, TensorRT fp16, batch 1 (Ultralytics docs tables)"),
}


def pairs_for(device: str, cards: list[ModelCard]) -> list[tuple[ModelCard, float]]:
    """(card, published ms) for every card with a profile and a latency on ``device``."""
    needle = DEVICES[device][0]
    out = []
    for card in cards:
        if card.profile is None:
            continue
        for figure in card.latencies:
            if needle in figure.device:
                out.append((card, figure.value))
                break
    return out


def fit_all(cards: list[ModelCard]) -> dict[str, Any]:
    """Fit every reference device that has at least three published latencies."""
    out: dict[str, Any] = {}
    for key, (_, description) in DEVICES.items():
        pairs = pairs_for(key, cards)
        if len(pairs) < 3:
            continue
        model = fit([(c.profile, ms) for c, ms in pairs], key, f"fit on {len(pairs)} published latencies ({description})")
        out[key] = {
            "coefficients": model.coefficients,
            "basis": model.basis,
            "fit_error": round(model.fit_error or 0.0, 4),
            "samples": [c.id for c, _ in pairs],
        }
    return out


def load_fits() -> dict[str, LatencyModel]:
    """The committed fits as latency models."""
    if not FITS.is_file():
        return {}
    raw = json.loads(FITS.read_text(encoding="utf-8"))
    return {k: LatencyModel(k, v["coefficients"], v["basis"], fit_error=v.get("fit_error"), samples=len(v.get("samples", []))) for k, v in raw.items()}


def all_cards() -> list[ModelCard]:
    """Every card of every installed plugin, all tasks."""
    from visiontl.catalogue import catalogue

    return catalogue()


def main() -> None:
    fits = fit_all(all_cards())
    FITS.write_text(json.dumps(fits, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    for key, value in fits.items():
        print(f"{key}: {len(value['samples'])} models, median |relative error| {value['fit_error']:.1%}", file=sys.stderr)


if __name__ == "__main__":
    main()
