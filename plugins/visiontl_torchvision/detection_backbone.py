"""A detector backbone from an installed classification model, with its own weights.

This is torchvision's "different backbone" recipe (``backbone = mobilenet_v2(...).features;
backbone.out_channels = 1280; FasterRCNN(backbone, ...)``), generalised: any classification
model id a plugin can build (``torchvision:squeezenet1_1``, ``torchvision:resnet50``,
``timm:resnet18`` ...) is built through its own plugin, with ``pretrained`` weights or a
local ``weights`` file (the SqueezeNet 1.1 ImageNet ``features.*`` file works as is), its
classifier removed, and its last feature map fed to the detector's single-level RPN and RoI
heads. The classification plugin's layer groups (stem, stages) become the detector's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl.contracts import BuiltModel, LayerGroup, WeightsReport
    from visiontl_torchvision.detection_wrapper import ClassifierBackbone


@dataclass
class Backbone:
    """What :func:`classifier_backbone` returns."""

    module: ClassifierBackbone
    model_id: str
    weights: WeightsReport
    groups: list[LayerGroup]


# --------------------------------------------------------------------------- feature extractors
# Module-level functions (not lambdas) so that the models pickle and deep-copy.


def features_of(model: nn.Module, x: Any) -> Any:
    """``model.features(x)``: SqueezeNet, MobileNet, EfficientNet, VGG, AlexNet, DenseNet, ConvNeXt."""
    return model.features(x)


def channels_last_features_of(model: nn.Module, x: Any) -> Any:
    """Swin's ``features`` return ``[B, H, W, C]``: permuted to ``[B, C, H, W]``."""
    return model.features(x).permute(0, 3, 1, 2)


def resnet_body(model: nn.Module, x: Any) -> Any:
    """ResNet, ResNeXt, Wide ResNet up to ``layer4`` (stride 32)."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def regnet_body(model: nn.Module, x: Any) -> Any:
    return model.trunk_output(model.stem(x))


def shufflenet_body(model: nn.Module, x: Any) -> Any:
    x = model.maxpool(model.conv1(x))
    return model.conv5(model.stage4(model.stage3(model.stage2(x))))


def mnasnet_body(model: nn.Module, x: Any) -> Any:
    return model.layers(x)


def timm_features(model: nn.Module, x: Any) -> Any:
    """timm's ``forward_features`` (the unpooled feature map of CNNs)."""
    return model.forward_features(x)


def _extractor(model: nn.Module, family: str) -> Any:
    name = type(model).__name__
    if family == "timm" or hasattr(model, "forward_features"):
        return timm_features
    if name == "SwinTransformer":
        return channels_last_features_of
    if hasattr(model, "layer4") and hasattr(model, "conv1"):
        return resnet_body
    if hasattr(model, "trunk_output"):
        return regnet_body
    if name == "ShuffleNetV2":
        return shufflenet_body
    if name == "MNASNet":
        return mnasnet_body
    if isinstance(getattr(model, "features", None), __import__("torch").nn.Module):
        return features_of
    raise ConfigError(
        f"A {name} cannot serve as a detection backbone here (no convolutional feature map to take).",
        fix="pick a CNN backbone such as torchvision:squeezenet1_1, torchvision:mobilenet_v2, "
        "torchvision:resnet50, torchvision:resnext101_32x8d",
    )


# --------------------------------------------------------------------------- building


def parse_backbone_id(spec: str) -> Any:
    """``family:name`` (a bare name means ``torchvision:name``)."""
    from visiontl.ids import parse_model_id

    return parse_model_id(spec if ":" in str(spec) else f"torchvision:{spec}")


def _build_classifier(spec: str, pretrained: bool, weights: Path | None) -> tuple[BuiltModel, list[LayerGroup]]:
    from visiontl.contracts import BuildRequest

    mid = parse_backbone_id(spec)
    request = BuildRequest(model_id=mid, task="classification", num_classes=2, pretrained=pretrained and weights is None, weights=weights)
    if mid.family == "torchvision":
        from visiontl_torchvision import classification

        built = classification.build(request)
        return built, classification.groups(built)
    # Another family: ask its plugin, exactly as the core would (the documented plugin API).
    from visiontl.plugin_manager import build_with_groups

    return build_with_groups(request)


def _remove_modules(model: nn.Module, params: list[str]) -> None:
    """Replace the modules holding ``params`` (the classifier) with ``Identity``."""
    from torch import nn

    for path in sorted({p.rsplit(".", 1)[0] for p in params if "." in p}, key=len):
        try:
            model.get_submodule(path)
        except AttributeError:
            continue  # already inside a removed module
        parent_path, _, attr = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, attr, nn.Identity())


def freeze_batchnorm(module: nn.Module) -> int:
    """Swap every BatchNorm2d under ``module`` for torchvision's FrozenBatchNorm2d (same
    statistics and affine, as buffers), as torchvision's detection backbones do: batches of
    two images make BatchNorm statistics useless. Returns the number swapped."""
    from torch import nn
    from torchvision.ops.misc import FrozenBatchNorm2d

    swapped = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
            swapped += 1
        else:
            swapped += freeze_batchnorm(child)
    return swapped


def classifier_backbone(
    spec: str,
    *,
    pretrained: bool = False,
    weights: Path | None = None,
    frozen_bn: bool = True,
    prefix: str = "",
) -> Backbone:
    """Build ``spec`` as a classifier and keep its feature extractor.

    Args:
        spec: a classification model id (``torchvision:squeezenet1_1``; a bare name is torchvision's).
        pretrained: load the backbone family's published weights.
        weights: a local weights file for the classifier (wins over ``pretrained``).
        frozen_bn: turn BatchNorm2d layers into FrozenBatchNorm2d (torchvision's choice for
            detection backbones).
        prefix: where the backbone sits in the final model (``detector.backbone.``), for groups.

    Returns:
        :class:`Backbone`: the module (with ``out_channels``), the weights report, and the
        classifier's non-head layer groups renamed under ``prefix``.
    """
    import torch

    from visiontl.contracts import LayerGroup
    from visiontl_torchvision.detection_wrapper import ClassifierBackbone

    built, cls_groups = _build_classifier(spec, pretrained, weights)
    model = built.model
    extract = _extractor(model, built.model_id.family)
    head_params = [p for g in cls_groups if g.role == "head" for p in g.params]
    if built.model_id.family == "timm" and hasattr(model, "reset_classifier"):
        model.reset_classifier(0)
    _remove_modules(model, head_params)
    if frozen_bn:
        freeze_batchnorm(model)
    model.eval()
    with torch.no_grad():
        probe = extract(model, torch.zeros(1, 3, 64, 64))
    if not isinstance(probe, torch.Tensor) or probe.ndim != 4:
        raise ConfigError(
            f"The backbone '{spec}' gives no [B, C, H, W] feature map (got {getattr(probe, 'shape', type(probe))}).",
            fix="pick a convolutional backbone (SqueezeNet, MobileNet, ResNet, ResNeXt ...)",
        )
    module = ClassifierBackbone(model, extract, int(probe.shape[1]))
    names = {n for n, _ in module.named_parameters()}
    groups = []
    for g in cls_groups:
        if g.role == "head":
            continue
        params = tuple(f"{prefix}model.{p}" for p in g.params if f"model.{p}" in names)
        if params:
            groups.append(LayerGroup(g.name, g.role, params))
    report = built.weights
    report.missing = [k for k in report.missing if not any(k.startswith(h.rsplit(".", 1)[0]) for h in head_params)]
    return Backbone(module, str(built.model_id), report, groups)
