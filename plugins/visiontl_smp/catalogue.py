"""Catalogue cards for a curated set of SMP architecture x encoder pairs.

SMP publishes no accuracy figures for its architectures; what it does publish is each
encoder's parameter count (rounded to millions, decoder not included), copied below with its
source. The whole model's parameters are counted here by building it on PyTorch's meta device
(no memory, no weights), for a 2-class head, and say so.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from visiontl.cards import ModelCard

#: (architecture, encoder, tags).
CURATED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("unet", "resnet34", ("cnn",)),
    ("unet", "resnet18", ("cnn", "edge-friendly")),
    ("unet", "efficientnet-b0", ("cnn", "mobile")),
    ("unetplusplus", "resnet34", ("cnn",)),
    ("fpn", "resnet34", ("cnn",)),
    ("linknet", "resnet18", ("cnn", "edge-friendly")),
    ("pspnet", "resnet34", ("cnn", "edge-friendly")),
    ("deeplabv3plus", "resnet50", ("cnn",)),
    ("deeplabv3plus", "mobilenet_v2", ("cnn", "mobile", "edge-friendly")),
    ("segformer", "mit_b0", ("transformer", "mobile")),
    ("unet", "tu-efficientnet_b0", ("cnn", "mobile", "timm")),
)

ENCODER_PARAMS_SOURCE = (
    "qubvel-org/segmentation_models.pytorch:docs/encoders.rst @50066163 "
    "(encoder-only params, rounded to M; decoder not included)"
)
#: Published encoder-only parameter counts in millions (the source above).
PUBLISHED_ENCODER_PARAMS_M: dict[str, float] = {
    "resnet18": 11,
    "resnet34": 21,
    "resnet50": 23,
    "efficientnet-b0": 4,
    "mobilenet_v2": 2,
    "mit_b0": 3,
    "timm-efficientnet-b0": 4,
}

LICENCE = "MIT (segmentation_models_pytorch code); encoder weights under their own licences"


def _count(arch: str, encoder: str) -> tuple[int, int]:
    """(whole-model, encoder) parameters for 2 classes, built on the meta device when possible."""
    import torch

    from visiontl.ids import ModelId
    from visiontl_smp.build import make_model
    from visiontl_smp.ids import parse_smp_name

    name = parse_smp_name(ModelId("smp", f"{arch}-{encoder}"))
    try:
        with torch.device("meta"):
            model = make_model(name, 2, {}, None, f"smp:{arch}-{encoder}")
    except Exception:  # noqa: BLE001 - encoders that call .item() at init (mit_*) need real tensors
        model = make_model(name, 2, {}, None, f"smp:{arch}-{encoder}")
    body: Any = model.encoder
    return int(sum(p.numel() for p in model.parameters())), int(sum(p.numel() for p in body.parameters()))


def _weights(encoder: str) -> tuple[str, ...]:
    if encoder.startswith("tu-"):
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(encoder[3:])
        return (f"hf-hub:{cfg.hf_hub_id}",) if cfg is not None and cfg.hf_hub_id else ()
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders[encoder].get("pretrained_settings", {})
    return tuple(f"hf-hub:{s['repo_id']} ({k})" for k, s in settings.items())


def _card(arch: str, encoder: str, tags: tuple[str, ...], version: str) -> ModelCard:
    total, enc = _count(arch, encoder)
    extras: dict[str, Any] = {
        "params_source": f"measured: built on the meta device with segmentation_models_pytorch {version}, 2 classes",
        "encoder_params_m_measured": round(enc / 1e6, 2),
        "smp": version,
    }
    published = PUBLISHED_ENCODER_PARAMS_M.get(encoder)
    if published is not None:
        extras["encoder_params_m_published"] = published
        extras["encoder_params_source"] = ENCODER_PARAMS_SOURCE
    return ModelCard(
        id=f"smp:{arch}-{encoder}",
        tasks=("segmentation",),
        params_m=round(total / 1e6, 2),
        input_size=(256, 256),
        licence=LICENCE,
        weights=_weights(encoder),
        tags=tags,
        notes=f"params counted here (whole model, 2 classes); encoder {round(enc / 1e6, 1)}M"
        + (f" (SMP docs: {published:g}M)" if published is not None else ""),
        extras=extras,
    )


@lru_cache(maxsize=1)
def cards() -> tuple[ModelCard, ...]:
    """Cards for :data:`CURATED` (pairs the installed SMP lacks are left out)."""
    import segmentation_models_pytorch as smp

    from visiontl_smp.ids import available_architectures

    archs = set(available_architectures())
    return tuple(_card(a, e, t, smp.__version__) for a, e, t in CURATED if a in archs)
