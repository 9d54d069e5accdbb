"""Layer groups of torchvision detectors, input to output.

* ResNet-50 FPN families (Faster/Mask R-CNN, RetinaNet, FCOS): ``stem`` (conv1, bn1),
  ``stage1..4`` (layer1..4), ``neck`` (the FPN and its extra levels);
* MobileNetV3 FPN Faster R-CNN and SSDlite: ``stem``, ``stage1..N`` cut where the resolution
  drops, ``neck`` (the FPN, or SSDlite's extra layers);
* a backbone taken from a classification model: that model's own groups (``stem``, stages);
* then the heads, all with role ``head`` (feature extraction trains every one of them):
  ``rpn``, ``box_head`` (RoI box head and predictor), ``mask_head`` (mask head and
  predictor) for the R-CNNs; ``cls_head`` and ``box_head`` for RetinaNet, FCOS and SSDlite.

BatchNorm layers that torchvision builds as ``FrozenBatchNorm2d`` have no parameters: they
sit inside their group and the plan shows them as frozen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from visiontl.contracts import GroupRole, LayerGroup
from visiontl.freeze.groups import groups_by_prefix

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

Spec = list[tuple[str, GroupRole, list[str]]]

#: Where the detector sits inside the visiontl wrapper.
ROOT = "detector"


def _stages_by_resolution(model: nn.Module, paths: list[str]) -> Spec:
    from visiontl_torchvision.groups import _by_resolution

    units = [(p, model.get_submodule(p)) for p in paths]
    return [(f"stage{i}", "stage", list(s)) for i, s in enumerate(_by_resolution(units), start=1)]


def _children(model: nn.Module, path: str) -> list[str]:
    return [f"{path}.{n}" for n, _ in model.get_submodule(path).named_children()]


def _resnet_fpn(model: nn.Module) -> Spec:
    body = f"{ROOT}.backbone.body"
    return [
        ("stem", "stem", [f"{body}.conv1", f"{body}.bn1"]),
        *[(f"stage{i}", "stage", [f"{body}.layer{i}"]) for i in range(1, 5)],
        ("neck", "neck", [f"{ROOT}.backbone.fpn"]),
    ]


def _mobilenet_fpn(model: nn.Module) -> Spec:
    units = _children(model, f"{ROOT}.backbone.body")
    return [("stem", "stem", [units[0]]), *_stages_by_resolution(model, units[1:]), ("neck", "neck", [f"{ROOT}.backbone.fpn"])]


def _ssdlite(model: nn.Module) -> Spec:
    units = _children(model, f"{ROOT}.backbone.features.0") + _children(model, f"{ROOT}.backbone.features.1")
    return [("stem", "stem", [units[0]]), *_stages_by_resolution(model, units[1:]), ("neck", "neck", [f"{ROOT}.backbone.extra"])]


def _heads(detector: nn.Module) -> Spec:
    h = ROOT
    if hasattr(detector, "roi_heads"):
        spec: Spec = [
            ("rpn", "head", [f"{h}.rpn"]),
            ("box_head", "head", [f"{h}.roi_heads.box_head", f"{h}.roi_heads.box_predictor"]),
        ]
        if getattr(detector.roi_heads, "mask_predictor", None) is not None:
            spec.append(("mask_head", "head", [f"{h}.roi_heads.mask_head", f"{h}.roi_heads.mask_predictor"]))
        return spec
    return [("cls_head", "head", [f"{h}.head.classification_head"]), ("box_head", "head", [f"{h}.head.regression_head"])]


def detection_groups(model: nn.Module, backbone_groups: list[LayerGroup] | None = None) -> list[LayerGroup]:
    """Ordered groups of a :class:`~visiontl_torchvision.detection_wrapper.TorchvisionDetector`.

    Args:
        model: the wrapper (its detector at ``model.detector``).
        backbone_groups: groups of a backbone taken from a classification model (already
            named under ``detector.backbone.``), used instead of the built-in rules.
    """
    detector: Any = model.detector
    if backbone_groups is not None:
        body: Spec = [(g.name, g.role, list(g.params)) for g in backbone_groups]
    elif hasattr(detector.backbone, "fpn") and hasattr(detector.backbone.body, "layer4"):
        body = _resnet_fpn(model)
    elif hasattr(detector.backbone, "fpn"):
        body = _mobilenet_fpn(model)
    elif hasattr(detector.backbone, "extra"):
        body = _ssdlite(model)
    else:  # pragma: no cover - every builder served here is covered above
        raise ValueError(f"no layer-group rule for {type(detector.backbone).__name__}")
    return groups_by_prefix(model, [*body, *_heads(detector)], rest=None)
