"""Catalogue cards for torchvision's stock segmentation models.

Every figure is read from the ``Weights.meta`` of each model's ``DEFAULT`` weights (offline,
shipped with torchvision): ``num_params`` (for the published 21-class head), ``_ops``
(torchvision's "GFLOPS", multiply-accumulates, at the 520 px evaluation size), and the
``_metrics`` on COCO val2017 restricted to the 20 PASCAL VOC categories (mIoU, pixel accuracy).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from visiontl.cards import Figure, ModelCard

#: Stock models and their selection hints.
CURATED: dict[str, tuple[str, ...]] = {
    "deeplabv3_resnet50": ("cnn",),
    "deeplabv3_resnet101": ("cnn",),
    "deeplabv3_mobilenet_v3_large": ("cnn", "mobile"),
    "lraspp_mobilenet_v3_large": ("cnn", "mobile", "edge-friendly"),
    "fcn_resnet50": ("cnn",),
    "fcn_resnet101": ("cnn",),
}

DATASET = "COCO val2017, 20 PASCAL VOC categories"
SOURCE = "https://github.com/pytorch/vision/tree/main/references/segmentation"


@lru_cache(maxsize=1)
def segmentation_cards() -> tuple[ModelCard, ...]:
    """Cards for :data:`CURATED`."""
    import torchvision
    from torchvision.models import get_model_weights

    return tuple(_card(name, get_model_weights(name).DEFAULT, tags, torchvision.__version__) for name, tags in CURATED.items())


def _card(name: str, weights: Any, tags: tuple[str, ...], version: str) -> ModelCard:
    meta = weights.meta
    figures: dict[str, Any] = next(iter(meta.get("_metrics", {}).values()), {})
    source = str(meta.get("recipe") or SOURCE)
    metrics = tuple(
        Figure(name=label, value=float(figures[key]), dataset=DATASET, source=source)
        for label, key in (("miou", "miou"), ("pixel_acc", "pixel_acc"))
        if key in figures
    )
    num_params = meta.get("num_params")
    ops = meta.get("_ops")
    return ModelCard(
        id=f"torchvision:{name}",
        tasks=("segmentation",),
        params_m=round(num_params / 1e6, 2) if num_params else None,
        gmacs=float(ops) if ops is not None else None,
        input_size=(520, 520),
        metrics=metrics,
        licence=str(meta.get("license") or "BSD-3-Clause (torchvision)"),
        weights=(str(weights.url),),
        tags=tags,
        notes=f"figures from torchvision {version} {weights} meta (21-class head, 520 px)",
        extras={"weights_enum": str(weights), "file_size_mb": meta.get("_file_size"), "num_params": num_params, "torchvision": version},
    )
