"""New heads for the user's classes on torchvision detectors, and their BatchNorm flavour.

Every detector is first built as torchvision builds it (91 COCO classes, with or without
the COCO weights), then its class-dependent layers are replaced for ``num_classes + 1``
outputs (background or the unused COCO index 0 first). Doing it the same way with and
without weights keeps the architecture, hence the checkpoint keys, identical.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from torch import nn

from visiontl.errors import ConfigError


def _keys(prefix: str, module: nn.Module) -> list[str]:
    return [f"{prefix}.{k}" for k in module.state_dict()]


def replace_heads(detector: Any, num_outputs: int, representation_size: int | None = None) -> list[str]:
    """Swap the class-dependent layers of ``detector`` for ``num_outputs`` classes.

    Args:
        detector: a torchvision Faster/Mask R-CNN, RetinaNet, FCOS or SSD.
        num_outputs: classes including the background/unused index 0.
        representation_size: width of a new two-layer box head (Faster/Mask R-CNN with
            torchvision's ``TwoMLPHead`` only).

    Returns:
        ``state_dict`` keys (relative to ``detector``) of every new layer.
    """
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

    new: list[str] = []
    if hasattr(detector, "roi_heads"):
        roi = detector.roi_heads
        in_features = roi.box_predictor.cls_score.in_features
        if representation_size is not None:
            if not isinstance(roi.box_head, TwoMLPHead):
                raise ConfigError(
                    f"model.options.representation_size applies to two-layer box heads (TwoMLPHead); this model has a {type(roi.box_head).__name__}.",
                    fix="remove model.options.representation_size (or use fasterrcnn_resnet50_fpn / the mobilenet variants / torchvision:fasterrcnn)",
                )
            roi.box_head = TwoMLPHead(roi.box_head.fc6.in_features, int(representation_size))
            in_features = int(representation_size)
            new += _keys("roi_heads.box_head", roi.box_head)
        roi.box_predictor = FastRCNNPredictor(in_features, num_outputs)
        new += _keys("roi_heads.box_predictor", roi.box_predictor)
        if getattr(roi, "mask_predictor", None) is not None:
            from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

            old = roi.mask_predictor
            roi.mask_predictor = MaskRCNNPredictor(old.conv5_mask.in_channels, old.conv5_mask.out_channels, num_outputs)
            new += _keys("roi_heads.mask_predictor", roi.mask_predictor)
        return new
    if representation_size is not None:
        raise ConfigError(
            f"model.options.representation_size applies to Faster/Mask R-CNN box heads, not {type(detector).__name__}.",
            fix="remove model.options.representation_size",
        )
    name = type(detector).__name__
    head = detector.head
    if name == "RetinaNet":
        from torchvision.models.detection.retinanet import RetinaNetClassificationHead

        # The v2 model normalises its head convolutions with GroupNorm: keep the same layers.
        group_norm = any(isinstance(m, nn.GroupNorm) for m in head.classification_head.modules())
        head.classification_head = RetinaNetClassificationHead(
            detector.backbone.out_channels,
            detector.anchor_generator.num_anchors_per_location()[0],
            num_outputs,
            norm_layer=partial(nn.GroupNorm, 32) if group_norm else None,
        )
    elif name == "FCOS":
        from torchvision.models.detection.fcos import FCOSClassificationHead

        head.classification_head = FCOSClassificationHead(
            detector.backbone.out_channels, detector.anchor_generator.num_anchors_per_location()[0], num_outputs
        )
    elif name == "SSD":
        from torchvision.models.detection import _utils as det_utils
        from torchvision.models.detection.ssdlite import SSDLiteClassificationHead

        size = tuple(detector.transform.fixed_size or (320, 320))
        channels = det_utils.retrieve_out_channels(detector.backbone, size)
        head.classification_head = SSDLiteClassificationHead(
            channels,
            detector.anchor_generator.num_anchors_per_location(),
            num_outputs,
            partial(nn.BatchNorm2d, eps=0.001, momentum=0.03),
        )
    else:  # pragma: no cover - BUILDERS lists only the families above
        raise ConfigError(f"No head replacement for {name}.")
    return _keys("head.classification_head", head.classification_head)


def set_batchnorm(module: nn.Module, frozen: bool) -> None:
    """Make every 2-D BatchNorm under ``module`` a FrozenBatchNorm2d (``frozen``) or a
    trainable BatchNorm2d (not ``frozen``), keeping its statistics and affine values.

    torchvision builds FrozenBatchNorm2d when it loads weights and BatchNorm2d otherwise;
    fixing the flavour by option keeps a model's layers (and checkpoint keys) the same
    however its weights were obtained.
    """
    from visiontl_torchvision.detection_backbone import freeze_batchnorm

    if frozen:
        freeze_batchnorm(module)
    else:
        unfreeze_batchnorm(module)


def unfreeze_batchnorm(module: nn.Module) -> int:
    """FrozenBatchNorm2d -> BatchNorm2d with the same statistics and affine (returns the count)."""
    import torch
    from torchvision.ops.misc import FrozenBatchNorm2d

    swapped = 0
    for name, child in list(module.named_children()):
        if isinstance(child, FrozenBatchNorm2d):
            bn = nn.BatchNorm2d(child.weight.numel(), eps=child.eps)
            with torch.no_grad():
                bn.weight.copy_(child.weight)
                bn.bias.copy_(child.bias)
                bn.running_mean.copy_(child.running_mean)
                bn.running_var.copy_(child.running_var)
            setattr(module, name, bn)
            swapped += 1
        else:
            swapped += unfreeze_batchnorm(child)
    return swapped
