"""Catalogue cards of torchvision's COCO-pretrained detectors.

Every figure comes from torchvision's own ``Weights.meta`` of the model's ``DEFAULT`` weights
(shipped with torchvision, read offline): ``num_params``, ``_ops`` (torchvision's "GFLOPS",
which count multiply-accumulates, hence GMACs), ``_metrics["COCO-val2017"]`` (``box_map``,
``mask_map``, in percent as published) and ``_file_size``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from visiontl.cards import Figure, ModelCard

#: Selection hints per builder.
TAGS: dict[str, tuple[str, ...]] = {
    "fasterrcnn_resnet50_fpn": ("two-stage", "cnn"),
    "fasterrcnn_resnet50_fpn_v2": ("two-stage", "cnn", "accurate"),
    "fasterrcnn_mobilenet_v3_large_fpn": ("two-stage", "cnn", "mobile"),
    "fasterrcnn_mobilenet_v3_large_320_fpn": ("two-stage", "cnn", "mobile", "edge-friendly"),
    "retinanet_resnet50_fpn": ("one-stage", "cnn"),
    "retinanet_resnet50_fpn_v2": ("one-stage", "cnn"),
    "fcos_resnet50_fpn": ("one-stage", "anchor-free", "cnn"),
    "ssdlite320_mobilenet_v3_large": ("one-stage", "cnn", "mobile", "edge-friendly"),
    "maskrcnn_resnet50_fpn": ("two-stage", "cnn"),
    "maskrcnn_resnet50_fpn_v2": ("two-stage", "cnn", "accurate"),
}
DATASET = "COCO val2017"
LICENCE = "BSD-3-Clause (torchvision)"


@lru_cache(maxsize=4)
def detection_cards(task: str) -> tuple[ModelCard, ...]:
    """Cards for the builders of ``task``, from each model's ``DEFAULT`` weights metadata."""
    import torchvision
    from torchvision.models import get_model_weights

    from visiontl_torchvision.detection import BUILDERS

    return tuple(
        _card(name, size, task, get_model_weights(name).DEFAULT, torchvision.__version__)
        for name, (_, size) in BUILDERS.get(task, {}).items()
    )


def _card(name: str, size: int, task: str, weights: Any, version: str) -> ModelCard:
    meta = weights.meta
    source = str(meta.get("recipe") or "https://pytorch.org/vision/stable/models.html#object-detection")
    coco = meta.get("_metrics", {}).get("COCO-val2017", {})
    # The task's own figure first (listings show the first one).
    keys = ("mask_map", "box_map") if task == "instance_segmentation" else ("box_map", "mask_map")
    metrics = tuple(Figure(name=key, value=float(coco[key]), dataset=DATASET, source=source) for key in keys if key in coco)
    num_params = meta.get("num_params")
    ops = meta.get("_ops")
    return ModelCard(
        id=f"torchvision:{name}",
        tasks=(task,),
        params_m=round(num_params / 1e6, 2) if num_params else None,
        gmacs=float(ops) if ops is not None else None,
        input_size=(size, size),
        metrics=metrics,
        licence=str(meta.get("license") or LICENCE),
        weights=(str(weights.url),),
        tags=TAGS.get(name, ()),
        notes=f"figures from torchvision {version} {weights} meta (mAP in percent; GMACs at torchvision's own input scaling)",
        extras={"weights_enum": str(weights), "file_size_mb": meta.get("_file_size"), "num_params": num_params, "torchvision": version},
    )
