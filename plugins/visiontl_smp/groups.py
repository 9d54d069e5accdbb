"""Layer groups of an SMP model: encoder stages by output stride, decoder, segmentation head.

Every SMP encoder returns its features as a list, entry ``i`` at the nominal stride ``2**i``
(entry 0 is the input). A parameter belongs to the stage of the *first* feature that depends on
it, which is found exactly, for any encoder, by asking autograd which parameters each feature
reaches on a small probe input (in eval mode: no statistics move). Stages are named by stride:

========  ======  ===========================================
group     stride  e.g. ResNet
========  ======  ===========================================
stem      2       conv1, bn1 (and anything at stride 1: VGG)
stage1    4       layer1
stage2    8       layer2
stage3    16      layer3
stage4    32      layer4
========  ======  ===========================================

The names follow the *nominal* stride, so a dilated encoder (DeepLabV3's output stride 8)
keeps five stages. Transformer-style encoders have no stride-2 feature: their patch embedding
is in ``stage1``. Encoder parameters no feature depends on (layers past ``encoder_depth``, a
classifier an encoder keeps) join the last stage, so "the last k stages" stays meaningful.

The decoder and the segmentation head are new, randomly initialised layers: both have role
``head``, so feature extraction trains them over a frozen encoder; progressive phases then
unfreeze stages from ``stage4`` down.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, cast

from visiontl.contracts import LayerGroup
from visiontl.errors import FreezeError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: Probe input sides tried in turn (some encoders need larger inputs, ViTs their own size).
PROBE_SIZES = (64, 128, 224, 256)


def _feature_index_of_params(encoder: nn.Module) -> dict[str, int]:
    """Parameter name (within the encoder) -> index of the first feature that depends on it."""
    import torch

    named = list(encoder.named_parameters())
    params = [p for _, p in named]
    flags = [p.requires_grad for p in params]
    modes = {name: m.training for name, m in encoder.named_modules()}
    device = params[0].device if params else torch.device("cpu")
    last_error: Exception | None = None
    try:
        for p in params:
            p.requires_grad_(True)
        encoder.eval()
        for side in PROBE_SIZES:
            try:
                with torch.enable_grad():
                    x = torch.zeros(1, 3, side, side, device=device)
                    features = encoder(x)
                    first: dict[str, int] = {}
                    for index, feature in enumerate(features):
                        if not isinstance(feature, torch.Tensor) or feature.numel() == 0 or not feature.requires_grad:
                            continue
                        grads = torch.autograd.grad(feature.float().sum(), params, allow_unused=True, retain_graph=True)
                        for (name, _), grad in zip(named, grads, strict=True):
                            if grad is not None and name not in first:
                                first[name] = index
                return first
            except (RuntimeError, ValueError, AssertionError) as exc:  # input too small for this encoder
                last_error = exc
                continue
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
        for name, m in encoder.named_modules():
            m.training = modes[name]
    raise FreezeError(f"Cannot probe the encoder's stages ({type(encoder).__name__}): {last_error}")


def stage_name(index: int) -> str:
    """Group name of feature ``index`` (stride ``2**index``)."""
    return "stem" if index <= 1 else f"stage{index - 1}"


def smp_groups(model: nn.Module) -> list[LayerGroup]:
    """``stem``, ``stage1..4`` (by output stride), ``decoder`` and ``head`` of an SMP model.

    Raises:
        FreezeError: the encoder cannot be probed, or a parameter is in no group.
    """
    encoder = cast("nn.Module", model.encoder)
    first = _feature_index_of_params(encoder)
    names = [n for n, _ in encoder.named_parameters()]
    if not first:
        raise FreezeError(f"No parameter of the {type(encoder).__name__} encoder reaches its features.")
    by_stage: dict[int, list[str]] = defaultdict(list)
    last = max(first.values())
    for name in names:
        # Parameters no feature uses go with the last stage (see the module docstring).
        by_stage[max(1, first.get(name, last))].append(f"encoder.{name}")
    groups = [LayerGroup(stage_name(i), "stem" if i <= 1 else "stage", tuple(by_stage[i])) for i in sorted(by_stage)]
    for attr, group in (("decoder", "decoder"), ("segmentation_head", "head"), ("classification_head", "classification_head")):
        module = getattr(model, attr, None)
        if module is not None:
            params = tuple(f"{attr}.{n}" for n, _ in module.named_parameters())
            if params:
                groups.append(LayerGroup(group, "head", params))
    covered = {p for g in groups for p in g.params}
    missing = [n for n, _ in model.named_parameters() if n not in covered]
    if missing:
        raise FreezeError(f"SMP model parameters in no group: {', '.join(missing[:3])}.")
    return groups
