"""The modules behind torchvision segmentation in visiontl.

* :class:`SimpleSegmentationLogits` and :class:`LRASPPLogits` adopt a torchvision DeepLabV3 /
  FCN / LR-ASPP model's children under the same names (so torchvision's weight files load
  unchanged) and repeat its forward, returning logits ``[B, C, H, W]`` instead of a dict; in
  training mode, a model with an auxiliary classifier returns ``{"out", "aux"}``, whose
  auxiliary term the segmentation loss adds.
* :class:`FeatureBody` and :class:`ForwardFeatures` turn a classifier into a backbone that
  returns its last feature map; :class:`SegmentationNet` puts a DeepLabV3 (ASPP) or FCN head
  on it.

Imported only from inside the plugin's build functions (it imports torch).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn


class SimpleSegmentationLogits(nn.Module):
    """torchvision's DeepLabV3/FCN (``backbone``, ``classifier``, ``aux_classifier``) -> logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = cast(nn.Module, model.backbone)
        self.classifier = cast(nn.Module, model.classifier)
        self.aux_classifier = cast("nn.Module | None", getattr(model, "aux_classifier", None))

    def forward(self, x: torch.Tensor) -> Any:
        size = x.shape[-2:]
        features = self.backbone(x)
        out = F.interpolate(self.classifier(features["out"]), size=size, mode="bilinear", align_corners=False)
        if self.aux_classifier is not None and self.training and "aux" in features:
            aux = F.interpolate(self.aux_classifier(features["aux"]), size=size, mode="bilinear", align_corners=False)
            return {"out": out, "aux": aux}
        return out


class LRASPPLogits(nn.Module):
    """torchvision's LR-ASPP (``backbone``, ``classifier``) -> logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = cast(nn.Module, model.backbone)
        self.classifier = cast(nn.Module, model.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.classifier(self.backbone(x))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


class FeatureBody(nn.Module):
    """The feature-extracting children of a classifier, run in order, under their own names
    (so ``backbone.<name>`` in the segmentation model is ``<name>`` in the classifier).

    Args:
        parts: (name, module) in forward order.
        post: applied to the last output (DenseNet's final ReLU).
    """

    def __init__(self, parts: Sequence[tuple[str, nn.Module]], post: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.order = [name for name, _ in parts]
        for name, module in parts:
            self.add_module(name, module)
        self.post = post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.order:
            x = getattr(self, name)(x)
        return self.post(x) if self.post is not None else x


class ForwardFeatures(nn.Module):
    """A timm-style classifier (``forward_features``) as a backbone; held as ``model``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(Any, self.model).forward_features(x)


def deeplab_head(in_channels: int, num_classes: int, channels: int = 256, rates: Sequence[int] = (6, 12, 18)) -> nn.Sequential:
    """torchvision's DeepLabHead (ASPP, 3x3 conv, BN, ReLU, 1x1 classifier) with its width and
    atrous rates as parameters."""
    from torchvision.models.segmentation.deeplabv3 import ASPP

    return nn.Sequential(
        ASPP(in_channels, list(rates), channels),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, num_classes, 1),
    )


def fcn_head(in_channels: int, num_classes: int) -> nn.Sequential:
    """torchvision's FCNHead (3x3 conv to in/4, BN, ReLU, dropout 0.1, 1x1 classifier)."""
    from torchvision.models.segmentation.fcn import FCNHead

    return FCNHead(in_channels, num_classes)


class SegmentationNet(nn.Module):
    """``head(backbone(x))`` upsampled (bilinear) to the input size."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.backbone(x))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def densenet_post(x: torch.Tensor) -> torch.Tensor:
    """DenseNet's forward applies a ReLU after its features."""
    return F.relu(x)


def feature_channels(body: nn.Module, side: int = 64) -> int:
    """Channels of ``body``'s output on a probe input (eval mode; modes restored after).

    Raises:
        ValueError: the output is not a ``[B, C, H, W]`` feature map.
    """
    modes = {name: m.training for name, m in body.named_modules()}
    device = next((p.device for p in body.parameters()), torch.device("cpu"))
    try:
        body.eval()
        with torch.no_grad():
            out = body(torch.zeros(1, 3, side, side, device=device))
    finally:
        for name, m in body.named_modules():
            m.training = modes[name]
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"its features are {shape}, not a [B, C, H, W] map")
    return int(out.shape[1])


def parts_of(model: nn.Module, names: Sequence[str]) -> list[tuple[str, nn.Module]]:
    """(name, child) for the named children of ``model``, in the given order."""
    children = OrderedDict(model.named_children())
    return [(n, children[n]) for n in names if n in children]
