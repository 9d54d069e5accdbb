"""Catalogue cards for a curated set of SMP architecture x encoder pairs: read from
``catalogue.json`` beside this file (plain JSON: neither torch nor SMP is imported), written by
``python -m visiontl_smp.catalogue`` (``--check`` only compares; a test regenerates entries and
compares them with the file).

Where each figure comes from:

* SMP publishes no accuracy figures for its architectures. What it publishes is each encoder's
  parameter count (rounded to millions, decoder not included), copied below with its source;
* the whole model's parameters and the MAC profile (at 512x512) are counted here, for a
  2-class head, by building the model on PyTorch's meta device (MiT encoders call ``.item()``
  while being built, so those are built on the CPU);
* ``encoder_top1``, a stated proxy for ranking: the ImageNet top-1 of the classification
  catalogue card of the encoder's architecture, with that figure's source (torchvision's card
  first for encoders whose ImageNet weights are torchvision's, timm's first for the others);
  none when no classification card exists (``mit_b0``). Where the proxy card's weights are not
  the ones SMP loads into the encoder, the card says so, and gives the top-1 of SMP's weights
  when it is published.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from visiontl.cards import ModelCard
from visiontl.catalogue import classification_cards_by_id, encoder_proxy

DATA = Path(__file__).resolve().parent / "catalogue.json"
INPUT = 512
NUM_CLASSES = 2

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

#: SMP encoders whose "imagenet" weights are torchvision's original ImageNet weights, and the
#: torchvision weights enum that publishes their top-1.
TORCHVISION_WEIGHTS: dict[str, str] = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "mobilenet_v2": "MobileNet_V2_Weights.IMAGENET1K_V1",
}
TORCHVISION_WEIGHTS_SOURCE = (
    "qubvel-org/segmentation_models.pytorch@14c60e20:segmentation_models_pytorch/encoders/resnet.py (imagenet settings of "
    "pretrainedmodels' torchvision_models, download.pytorch.org/models/resnet*) and @1914f6a8:segmentation_models_pytorch/"
    "encoders/mobilenet.py (download.pytorch.org/models/mobilenet_v2-b0353104.pth); SMP 0.6 re-hosts them on smp-hub"
)
#: Other encoders whose weights are not those of the proxy card.
OTHER_WEIGHTS: dict[str, str] = {
    "efficientnet-b0": "SMP's efficientnet-b0 loads lukemelas/EfficientNet-PyTorch's port of the TensorFlow weights, not timm's",
}

LICENCE = "MIT (segmentation_models_pytorch code); encoder weights under their own licences"


@lru_cache(maxsize=1)
def cards() -> tuple[ModelCard, ...]:
    """Cards for :data:`CURATED` from the committed data file (no torch or SMP import)."""
    if not DATA.is_file():
        return ()
    return tuple(ModelCard.from_dict(entry) for entry in json.loads(DATA.read_text(encoding="utf-8")))


def encoder_base(encoder: str) -> str:
    """The encoder's architecture as classification catalogues name it (``tu-efficientnet_b0``,
    ``efficientnet-b0`` -> ``efficientnet_b0``)."""
    name = encoder[3:] if encoder.startswith("tu-") else encoder
    return name.split(".", 1)[0].replace("-", "_")


def proxy_candidates(encoder: str) -> tuple[str, ...]:
    """Classification card ids for the encoder's proxy, best first."""
    base = encoder_base(encoder)
    if encoder in TORCHVISION_WEIGHTS:
        return (f"torchvision:{base}", f"timm:{base}")
    return (f"timm:{base}", f"torchvision:{base}")






def _build(arch: str, encoder: str) -> Any:
    from visiontl.ids import ModelId
    from visiontl_smp.build import make_model
    from visiontl_smp.ids import parse_smp_name

    name = parse_smp_name(ModelId("smp", f"{arch}-{encoder}"))
    return make_model(name, NUM_CLASSES, {}, None, f"smp:{arch}-{encoder}")


def _count(arch: str, encoder: str) -> tuple[int, int, str]:
    """(whole-model, encoder) parameters for 2 classes and the device they were built on."""
    import torch

    try:
        with torch.device("meta"):
            model = _build(arch, encoder)
        device = "meta"
    except (NotImplementedError, RuntimeError):  # encoders that call .item() at init (mit_*) need real tensors
        model, device = _build(arch, encoder), "cpu"
    body: Any = model.encoder
    return int(sum(p.numel() for p in model.parameters())), int(sum(p.numel() for p in body.parameters())), device


def _weights(encoder: str) -> tuple[str, ...]:
    if encoder.startswith("tu-"):
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(encoder[3:])
        return (f"hf-hub:{cfg.hf_hub_id}",) if cfg is not None and cfg.hf_hub_id else ()
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders[encoder].get("pretrained_settings", {})
    return tuple(f"hf-hub:{s['repo_id']} ({k})" for k, s in settings.items())


def _weights_note(encoder: str, proxy_id: str, proxy_top1: float) -> tuple[str, dict[str, Any]]:
    """A sentence on how the proxy card's weights relate to SMP's, and the extras that back it."""
    enum = TORCHVISION_WEIGHTS.get(encoder)
    if enum is not None:
        from torchvision.models import get_weight

        top1 = get_weight(enum).meta["_metrics"]["ImageNet-1K"]["acc@1"]
        same = proxy_id.startswith("torchvision:") and top1 == proxy_top1
        extras = {"encoder_weights": f"torchvision {enum}", "encoder_weights_top1": top1, "encoder_weights_source": TORCHVISION_WEIGHTS_SOURCE}
        if same:
            return "", extras
        return f" (SMP's ImageNet weights for {encoder} are torchvision's {enum}, top-1 {top1:g})", extras
    if encoder in OTHER_WEIGHTS:
        return f" ({OTHER_WEIGHTS[encoder]})", {}
    return "", {}


def _card(arch: str, encoder: str, tags: tuple[str, ...], version: str, classifiers: dict[str, ModelCard]) -> ModelCard:
    from visiontl.selection.profile import profile_report

    total, enc, device = _count(arch, encoder)
    report = profile_report(lambda: _build(arch, encoder), (INPUT, INPUT))
    extras: dict[str, Any] = {
        "params_source": f"measured: built on the {device} device with segmentation_models_pytorch {version}, {NUM_CLASSES} classes",
        "encoder_params_m_measured": round(enc / 1e6, 2),
        "smp": version,
        "profile_device": report.device,
        "profile_source": f"measured: python -m visiontl_smp.catalogue (segmentation_models_pytorch {version}, {NUM_CLASSES} classes)",
    }
    published = PUBLISHED_ENCODER_PARAMS_M.get(encoder)
    if published is not None:
        extras["encoder_params_m_published"] = published
        extras["encoder_params_source"] = ENCODER_PARAMS_SOURCE
    notes = f"params counted here (whole model, {NUM_CLASSES} classes); encoder {round(enc / 1e6, 1)}M" + (
        f" (SMP docs: {published:g}M)" if published is not None else ""
    )
    notes += f"; MAC profile counted here at {INPUT}x{INPUT}: {report.profile.macs / 1e9:.3f} GMACs"
    proxy, proxy_id = encoder_proxy(proxy_candidates(encoder), classifiers)
    if proxy is not None:
        why, more = _weights_note(encoder, proxy_id, proxy.value)
        notes += f"; encoder_top1 is a proxy, the ImageNet top-1 of {proxy_id}{why}"
        extras.update(more)
    else:
        notes += f"; no encoder_top1 proxy: no classification card for {encoder_base(encoder)}"
    extras["encoder_proxy"] = proxy_id or None
    return ModelCard(
        id=f"smp:{arch}-{encoder}",
        tasks=("segmentation",),
        params_m=round(total / 1e6, 2),
        gmacs=round(report.profile.macs / 1e9, 3),
        input_size=(INPUT, INPUT),
        metrics=(proxy,) if proxy is not None else (),
        licence=LICENCE,
        weights=_weights(encoder),
        tags=tags,
        notes=notes,
        arch=arch,
        profile=report.profile,
        extras=extras,
    )


def generate(names: Sequence[str] | None = None, classifiers: dict[str, ModelCard] | None = None) -> list[dict[str, Any]]:
    """Build and count :data:`CURATED` (or only ``names``, as ``arch-encoder``) and return the card dicts.

    Args:
        names: pairs to generate (default: all, in :data:`CURATED`'s order).
        classifiers: classification cards by id for the ``encoder_top1`` proxies (default: the
            installed catalogue's).
    """
    import segmentation_models_pytorch as smp

    from visiontl_smp.ids import available_architectures

    classifiers = classification_cards_by_id() if classifiers is None else classifiers
    archs = set(available_architectures())
    return [
        _card(a, e, t, smp.__version__, classifiers).as_dict()
        for a, e, t in CURATED
        if a in archs and (names is None or f"{a}-{e}" in names)
    ]


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``catalogue.json``; ``--check`` only compares."""
    from visiontl.catalogue import write_or_check

    return write_or_check(DATA, generate(), "visiontl_smp.catalogue", argv)


if __name__ == "__main__":
    raise SystemExit(main())
