"""A classifier of any installed family as a segmentation backbone.

``torchvision:deeplabv3`` and ``torchvision:fcn`` take ``model.options.backbone``, the id of a
classification model (``torchvision:squeezenet1_1``, ``timm:resnet18`` ...). The classifier is
built by its own family's plugin (so its published weights, a local weights file, or a
visiontl classification checkpoint load exactly as they would for classification); then its
feature-extracting part becomes the backbone and its classifier is left out:

* torchvision classifiers: the children listed in :data:`BODIES` (``features`` for SqueezeNet,
  MobileNet, EfficientNet, VGG, DenseNet, ConvNeXt; ``conv1 .. layer4`` for ResNet ...);
* any other family: a model with timm's ``forward_features`` (its classifier reset to none).

The backbone's layer groups are its family's classification groups, minus the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from visiontl.errors import ConfigError, PluginError

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from torch import nn

    from visiontl.contracts import BuiltModel, LayerGroup

#: torchvision classifier class -> its feature-extracting children, in forward order.
BODIES: dict[str, tuple[str, ...]] = {
    "AlexNet": ("features",),
    "ConvNeXt": ("features",),
    "DenseNet": ("features",),
    "EfficientNet": ("features",),
    "MNASNet": ("layers",),
    "MobileNetV2": ("features",),
    "MobileNetV3": ("features",),
    "RegNet": ("stem", "trunk_output"),
    "ResNet": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"),
    "ShuffleNetV2": ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"),
    "SqueezeNet": ("features",),
    "VGG": ("features",),
}


@dataclass
class Backbone:
    """A backbone cut from a classifier.

    Attributes:
        module: returns a ``[B, C, h, w]`` feature map.
        channels: ``C``.
        built: the classifier as its plugin built it (weights report, preprocessing).
        groups: the classifier's layer groups restricted to the backbone, with parameter names
            relative to ``module``.
        prefix: what ``module``'s state-dict keys put before the classifier's own (``model.``
            for a ``forward_features`` wrapper, nothing for torchvision bodies).
    """

    module: Any
    channels: int
    built: BuiltModel
    groups: list[LayerGroup]
    prefix: str = ""


def build_classifier(backbone_id: str, pretrained: bool, weights: Path | None, options: dict[str, Any]) -> tuple[BuiltModel, list[LayerGroup]]:
    """The classifier and its layer groups, from its family's plugin.

    Raises:
        ConfigError: malformed id.
        PluginError / UnknownModelError / WeightsError: from the family's plugin.
    """
    from visiontl.contracts import BuildRequest
    from visiontl.ids import parse_model_id

    mid = parse_model_id(backbone_id)
    request = BuildRequest(model_id=mid, task="classification", num_classes=2, pretrained=pretrained, weights=weights, options=dict(options))
    if mid.family == "torchvision":
        from visiontl_torchvision.classification import build, groups

        built = build(request)
        return built, groups(built)
    # Another family: ask its plugin, exactly as the core would (the documented plugin API).
    from visiontl.plugin_manager import build_with_groups

    return build_with_groups(request)


def cut_backbone(built: BuiltModel, groups: list[LayerGroup], backbone_id: str) -> Backbone:
    """The feature-extracting part of a built classifier.

    Raises:
        PluginError: the architecture has no feature-map body this module knows.
    """
    from visiontl_torchvision.arch import architecture
    from visiontl_torchvision.segmentation_nets import (
        FeatureBody,
        ForwardFeatures,
        densenet_post,
        feature_channels,
        parts_of,
    )

    model = built.model
    arch = architecture(model, BODIES)
    prefix = ""
    if arch is not None:
        module: nn.Module = FeatureBody(parts_of(model, BODIES[arch]), densenet_post if arch == "DenseNet" else None)
    elif hasattr(model, "forward_features") and hasattr(model, "reset_classifier"):
        cast(Any, model).reset_classifier(0)
        module = ForwardFeatures(model)
        prefix = "model."
    else:
        raise PluginError(
            f"'{backbone_id}' ({type(model).__name__}) has no feature map this plugin can cut out.",
            fix="use a CNN classifier: torchvision " + ", ".join(sorted(BODIES)) + ", or a timm model with forward_features",
        )
    try:
        channels = feature_channels(module)
    except ValueError as exc:
        raise PluginError(f"'{backbone_id}' cannot be a segmentation backbone: {exc}.", fix="use a CNN backbone") from None
    return Backbone(module, channels, built, _restrict(groups, module, prefix), prefix)


def _restrict(groups: list[LayerGroup], module: nn.Module, prefix: str) -> list[LayerGroup]:
    """The classifier's groups with names relative to ``module``; its classifier dropped.

    Parameters of a classifier *head* group that the body keeps (a timm model's final norm,
    unused by ``forward_features``) join the last stage.
    """
    from visiontl.contracts import LayerGroup

    own = {n for n, _ in module.named_parameters()}
    out: list[LayerGroup] = []
    leftovers: list[str] = []
    for g in groups:
        names = tuple(prefix + p for p in g.params if prefix + p in own)
        if not names:
            continue
        if g.role == "head":
            leftovers += names
        else:
            out.append(LayerGroup(g.name, g.role, names))
    if leftovers:
        if not out:
            raise ConfigError("The backbone's layer groups are all classifier groups.")
        last = out[-1]
        out[-1] = LayerGroup(last.name, last.role, last.params + tuple(leftovers))
    covered = {p for g in out for p in g.params}
    missing = sorted(own - covered)
    if missing:
        raise PluginError(f"Backbone parameters in no layer group: {', '.join(missing[:3])}.")
    return out
