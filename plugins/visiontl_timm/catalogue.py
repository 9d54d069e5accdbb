"""Catalogue cards for a curated set of timm classifiers.

Parameters and MACs here are computed, not copied: each card's model is built on the meta
device (no memory, no weights) and counted. Published figures arrive with the selection
engine's catalogue data.
"""

from __future__ import annotations

from functools import lru_cache

from visiontl.cards import ModelCard

CURATED = (
    "efficientnet_b0",
    "efficientnet_b3",
    "resnet18",
    "resnet50",
    "mobilenetv3_large_100",
    "mobilenetv2_100",
    "convnext_tiny",
    "swin_tiny_patch4_window7_224",
    "vit_small_patch16_224",
    "regnety_016",
)


@lru_cache(maxsize=1)
def cards() -> list[ModelCard]:
    """Cards for :data:`CURATED` (params counted on the meta device)."""
    import timm
    import torch

    out = []
    for name in CURATED:
        if not timm.is_model(name):
            continue
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        cfg = model.pretrained_cfg or {}
        size = tuple(cfg.get("input_size", (3, 224, 224))[1:])
        weights = tuple(w for w in (f"hf-hub:{cfg['hf_hub_id']}" if cfg.get("hf_hub_id") else "", cfg.get("url") or "") if w)
        out.append(
            ModelCard(
                id=f"timm:{name}",
                tasks=("classification",),
                params_m=round(params, 2),
                input_size=(int(size[0]), int(size[1])),
                licence=str(cfg.get("license", "")),
                weights=weights,
            )
        )
    return out
