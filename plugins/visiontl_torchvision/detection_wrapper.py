"""The visiontl face of a torchvision detector: 0-based classes, the detection contract.

torchvision's detectors reserve class 0 for the background (Faster/Mask R-CNN) or leave it
unused (RetinaNet, FCOS, SSD, which were trained on COCO's 1-based category ids). visiontl
uses 0-based contiguous classes everywhere, so the wrapper adds one to the labels it passes
in and subtracts one from the labels it hands back; predictions of the never-trained column
0 (possible for the sigmoid heads of RetinaNet and FCOS) are dropped.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Target keys torchvision's detectors read; the others (iscrowd, image_id) stay outside.
_TARGET_KEYS = ("boxes", "labels", "masks")


class TorchvisionDetector(nn.Module):
    """A torchvision detection model speaking the visiontl detection contract.

    Args:
        detector: a torchvision ``GeneralizedRCNN``, ``RetinaNet``, ``FCOS`` or ``SSD`` built
            for ``num_classes + 1`` classes.
        num_classes: the user's classes.
        masks: the detector predicts instance masks (Mask R-CNN).

    Train mode: ``model(images, targets) -> {loss name: tensor}``. Eval mode:
    ``model(images) -> [{"boxes", "scores", "labels"(, "masks" [K, H, W])}]``; a 4-D tensor
    batch is accepted in place of the list.
    """

    def __init__(self, detector: nn.Module, num_classes: int, masks: bool = False) -> None:
        super().__init__()
        self.detector = detector
        self.num_classes = num_classes
        self.masks = masks

    def forward(self, images: Any, targets: list[dict[str, Any]] | None = None) -> Any:
        if isinstance(images, torch.Tensor):
            if images.ndim != 4:
                raise ValueError(f"expected a list of [3, H, W] images or a [B, 3, H, W] batch, got shape {tuple(images.shape)}")
            images = list(images.unbind(0))
        if self.training:
            if targets is None:
                raise ValueError("a detection model in train mode needs targets (switch to eval() to predict)")
            return self.detector(images, [self._shift_in(t) for t in targets])
        outputs = self.detector(images)
        return [self._shift_out(o) for o in outputs]

    def _shift_in(self, target: dict[str, Any]) -> dict[str, Any]:
        out = {k: target[k] for k in _TARGET_KEYS if k in target}
        out["labels"] = target["labels"].to(torch.int64) + 1
        if "masks" in out:
            out["masks"] = out["masks"].to(torch.uint8)
        return out

    def _shift_out(self, output: dict[str, Any]) -> dict[str, Any]:
        keep = output["labels"] > 0
        out = {
            "boxes": output["boxes"][keep],
            "scores": output["scores"][keep],
            "labels": output["labels"][keep] - 1,
        }
        if "masks" in output:
            masks = output["masks"][keep]
            out["masks"] = masks[:, 0] if masks.ndim == 4 else masks
        return out


class ClassifierBackbone(nn.Module):
    """A classification model cut down to its feature extractor (torchvision's "different
    backbone" path): ``forward`` returns the last feature map, ``out_channels`` its depth.

    The classifier keeps its module names (``model.features.3...``), so the plugin that
    built it can still describe its layer groups; its head layers are removed.

    Args:
        model: the classification model (its head already removed or unused).
        extract: ``extract(model, x) -> [B, C, H, W]`` feature map.
        out_channels: ``C``.
    """

    def __init__(self, model: nn.Module, extract: Any, out_channels: int) -> None:
        super().__init__()
        self.model = model
        self._extract = extract
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._extract(self.model, x)
