"""Catalogue cards for a curated set of torchvision classifiers.

Every figure is read from torchvision's own ``Weights.meta`` of the model's ``DEFAULT`` weights
(offline, shipped with torchvision): ``num_params``, ``_ops`` (torchvision's "GFLOPS", which
count multiply-accumulates, hence GMACs), ``_metrics["ImageNet-1K"]`` and ``_file_size``. Each
accuracy figure cites the recipe or docs URL given in the metadata. The MAC profile used by
the latency model is counted by building each model on the meta device.

Cards are read from ``catalogue_classification.json`` (plain JSON: ``visiontl select`` never
imports torch); ``python -m visiontl_torchvision.catalogue`` regenerates the file and a test
checks that it is current.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from visiontl.cards import Figure, ModelCard

DATA = Path(__file__).resolve().parent / "catalogue_classification.json"

#: Curated models, and the selection hints for each.
CURATED: dict[str, tuple[str, ...]] = {
    "resnet18": ("cnn",),
    "resnet50": ("cnn",),
    "mobilenet_v2": ("cnn", "mobile", "edge-friendly"),
    "mobilenet_v3_small": ("cnn", "mobile", "edge-friendly"),
    "mobilenet_v3_large": ("cnn", "mobile", "edge-friendly"),
    "efficientnet_b0": ("cnn", "mobile"),
    "efficientnet_b3": ("cnn",),
    "squeezenet1_1": ("cnn", "mobile", "edge-friendly"),
    "convnext_tiny": ("cnn",),
    "regnet_y_800mf": ("cnn", "edge-friendly"),
    "shufflenet_v2_x1_0": ("cnn", "mobile", "edge-friendly"),
    "swin_t": ("transformer",),
    "vit_b_16": ("transformer",),
}

LICENCE = "BSD-3-Clause (torchvision)"
DATASET = "ImageNet-1k val"


@lru_cache(maxsize=1)
def classification_cards() -> tuple[ModelCard, ...]:
    """Cards for :data:`CURATED` from the committed data file (no torch import)."""
    if not DATA.is_file():
        return ()
    return tuple(ModelCard.from_dict(entry) for entry in json.loads(DATA.read_text(encoding="utf-8")))


def generate_classification_cards() -> tuple[ModelCard, ...]:
    """Cards for :data:`CURATED`, from the metadata of each model's ``DEFAULT`` weights."""
    import torchvision
    from torchvision.models import get_model_weights

    from visiontl_torchvision.weights import preprocessing

    return tuple(
        _card(name, get_model_weights(name).DEFAULT, tags, torchvision.__version__, preprocessing)
        for name, tags in CURATED.items()
    )


def _card(name: str, weights: Any, tags: tuple[str, ...], version: str, preprocessing: Any) -> ModelCard:
    meta = weights.meta
    source = str(meta.get("recipe") or "https://pytorch.org/vision/stable/models.html")
    provenance = f"torchvision {version} {weights} meta"
    imagenet = meta.get("_metrics", {}).get("ImageNet-1K", {})
    metrics = tuple(
        Figure(name=label, value=float(imagenet[key]), dataset=DATASET, source=source)
        for label, key in (("top1", "acc@1"), ("top5", "acc@5"))
        if key in imagenet
    )
    num_params = meta.get("num_params")
    ops = meta.get("_ops")
    size = preprocessing(weights).input_size
    from torchvision.models import get_model

    from visiontl.selection.profile import mac_profile

    profile = mac_profile(lambda: get_model(name), size)
    return ModelCard(
        id=f"torchvision:{name}",
        tasks=("classification",),
        params_m=round(num_params / 1e6, 2) if num_params else None,
        gmacs=float(ops) if ops is not None else None,
        input_size=size,
        metrics=metrics,
        licence=str(meta.get("license") or LICENCE),
        weights=(str(weights.url),),
        tags=tags,
        notes=f"figures from {provenance}",
        arch=name.rstrip("0123456789_").split("_")[0],
        profile=profile,
        extras={
            "weights_enum": str(weights),
            "file_size_mb": meta.get("_file_size"),
            "num_params": num_params,
            "torchvision": version,
        },
    )


def main() -> None:
    cards = generate_classification_cards()
    DATA.write_text(json.dumps([c.as_dict() for c in cards], indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(cards)} cards to {DATA}", file=sys.stderr)


if __name__ == "__main__":
    main()
