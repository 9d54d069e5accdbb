"""Catalogue cards for torchvision's stock segmentation models: read from
``catalogue_segmentation.json`` (plain JSON, no torch), written by
``python -m visiontl_torchvision.segmentation_catalogue`` (``--check`` only compares; a test
regenerates entries and compares them with the file).

Where each figure comes from:

* ``params_m`` (the published 21-class model, auxiliary classifier included), ``gmacs``
  (torchvision's "GFLOPS", multiply-accumulates, at 520 px, auxiliary classifier included),
  ``miou`` and ``pixel_acc`` (COCO val2017 restricted to the 20 PASCAL VOC categories): the
  ``Weights.meta`` of each model's ``DEFAULT`` weights, shipped with torchvision;
* the MAC profile: counted here on the meta device at 520x520 with the 21-class head and
  *without* the auxiliary classifier, which only serves training (visiontl builds these models
  without it unless ``model.options.aux_loss: true``);
* ``encoder_top1``, a stated proxy for ranking: the ImageNet top-1 of the classification
  catalogue card of the same backbone (torchvision's card first, timm's when torchvision's
  catalogue has none), with that figure's source. The backbone these models were trained from
  may carry other ImageNet weights than that card; each card says which.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from visiontl.cards import Figure, ModelCard
from visiontl.catalogue import classification_cards_by_id, encoder_proxy

DATA = Path(__file__).resolve().parent / "catalogue_segmentation.json"

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
INPUT = 520
NUM_CLASSES = 21


@lru_cache(maxsize=1)
def segmentation_cards() -> tuple[ModelCard, ...]:
    """Cards for :data:`CURATED` from the committed data file (no torch import)."""
    if not DATA.is_file():
        return ()
    return tuple(ModelCard.from_dict(entry) for entry in json.loads(DATA.read_text(encoding="utf-8")))


def split_name(name: str) -> tuple[str, str]:
    """(architecture, backbone) of a stock builder (``lraspp_mobilenet_v3_large`` -> ``lraspp``,
    ``mobilenet_v3_large``)."""
    arch, _, backbone = name.partition("_")
    return arch, backbone






def generate(names: Sequence[str] | None = None, classifiers: dict[str, ModelCard] | None = None) -> list[dict[str, Any]]:
    """Build and count :data:`CURATED` (or only ``names``) and return the card dicts.

    Args:
        names: builders to generate (default: all of :data:`CURATED`, in its order).
        classifiers: classification cards by id for the ``encoder_top1`` proxies (default: the
            installed catalogue's).
    """
    import torchvision
    from torchvision.models import get_model_weights

    classifiers = classification_cards_by_id() if classifiers is None else classifiers
    return [
        _card(name, get_model_weights(name).DEFAULT, tags, torchvision.__version__, classifiers).as_dict()
        for name, tags in CURATED.items()
        if names is None or name in names
    ]


def _backbone_weights(name: str) -> Any:
    """The ImageNet weights torchvision's builder starts the backbone from (``weights_backbone``'s default)."""
    import inspect

    from torchvision.models import get_model_builder

    parameter = inspect.signature(get_model_builder(name)).parameters.get("weights_backbone")
    return parameter.default if parameter is not None else None


def _card(name: str, weights: Any, tags: tuple[str, ...], version: str, classifiers: dict[str, ModelCard]) -> ModelCard:
    from torchvision.models import get_model

    from visiontl.selection.profile import profile_report

    meta = weights.meta
    figures: dict[str, Any] = next(iter(meta.get("_metrics", {}).values()), {})
    source = str(meta.get("recipe") or SOURCE)
    metrics = [
        Figure(name=label, value=float(figures[key]), dataset=DATASET, source=source)
        for label, key in (("miou", "miou"), ("pixel_acc", "pixel_acc"))
        if key in figures
    ]
    arch, backbone = split_name(name)
    proxy, proxy_id = encoder_proxy((f"torchvision:{backbone}", f"timm:{backbone}"), classifiers)
    if proxy is not None:
        metrics.append(proxy)
    num_params = meta.get("num_params")
    ops = meta.get("_ops")
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": NUM_CLASSES}
    if arch != "lraspp":  # LR-ASPP has no auxiliary classifier (nor the keyword)
        kwargs["aux_loss"] = False
    report = profile_report(lambda: get_model(name, **kwargs), (INPUT, INPUT))
    counted = report.profile.macs / 1e9
    pretrained_from = _backbone_weights(name)
    notes = (
        f"figures from torchvision {version} {weights} meta (21-class head, {INPUT} px; params and GMACs as published, "
        f"auxiliary classifier included); MAC profile counted here at {INPUT}x{INPUT} without the auxiliary classifier: "
        f"{counted:.3f} GMACs"
    )
    top1 = pretrained_from.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1") if pretrained_from is not None else None
    if proxy is not None:
        notes += f"; encoder_top1 is a proxy, the ImageNet top-1 of {proxy_id}"
        if pretrained_from is not None:
            notes += f" (the backbone was pretrained from {pretrained_from}" + (f", top-1 {top1:g})" if top1 is not None else ")")
    else:
        notes += f"; no encoder_top1 proxy: no classification card for {backbone}"
    extras: dict[str, Any] = {
        "weights_enum": str(weights),
        "file_size_mb": meta.get("_file_size"),
        "num_params": num_params,
        "torchvision": version,
        "gmacs_counted": round(counted, 3),
        "profile_device": report.device,
        "profile_source": f"measured: python -m visiontl_torchvision.segmentation_catalogue (torchvision {version}, no auxiliary classifier)",
        "backbone": backbone,
        "encoder_proxy": proxy_id or None,
        "encoder_weights": f"torchvision {pretrained_from}" if pretrained_from is not None else None,
        "encoder_weights_top1": top1,
    }
    return ModelCard(
        id=f"torchvision:{name}",
        tasks=("segmentation",),
        params_m=round(num_params / 1e6, 2) if num_params else None,
        gmacs=float(ops) if ops is not None else None,
        input_size=(INPUT, INPUT),
        metrics=tuple(metrics),
        licence=str(meta.get("license") or "BSD-3-Clause (torchvision)"),
        weights=(str(weights.url),),
        tags=tags,
        notes=notes,
        arch=arch,
        profile=report.profile,
        extras=extras,
    )


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``catalogue_segmentation.json``; ``--check`` only compares."""
    from visiontl.catalogue import write_or_check

    return write_or_check(DATA, generate(), "visiontl_torchvision.segmentation_catalogue", argv)


if __name__ == "__main__":
    raise SystemExit(main())
