"""Catalogue cards of torchvision's COCO-pretrained detectors (detection and instance
segmentation): read from ``catalogue_detection.json`` (plain JSON, no torch), written by
``python -m visiontl_torchvision.detection_catalogue`` (``--check`` only compares; a test
regenerates entries and compares them with the file).

Where each figure comes from:

* ``params_m``, ``gmacs`` (torchvision's "GFLOPS", which count multiply-accumulates),
  ``box_map``/``mask_map`` (COCO val2017, percent, as published) and the file size: torchvision's
  own ``Weights.meta`` of the model's ``DEFAULT`` weights, shipped with torchvision;
* the MAC profile: counted here (:func:`visiontl.selection.profile.profile_report`) at the
  model's stated input size with the 91-class COCO heads. A detector cannot run on the meta
  device (NMS and box filtering have data-dependent shapes), so it is built and run for real
  on the CPU with seeded random weights and input. Two-stage models are counted with their RoI
  heads at test-time capacity (every RPN proposal kept, every detection slot filled), which is
  what torchvision's own counts assume for the ResNet-50 models and what a trained model on a
  busy image approaches; NMS and RoIAlign have no FLOP formula and are not counted (each card
  says which operators were left out).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.cards import Figure, ModelCard

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.selection.profile import ProfileReport

DATA = Path(__file__).resolve().parent / "catalogue_detection.json"

#: Selection hints per builder.
TAGS: dict[str, tuple[str, ...]] = {
    "fasterrcnn_resnet50_fpn": ("two-stage", "cnn"),
    "fasterrcnn_resnet50_fpn_v2": ("two-stage", "cnn", "accurate"),
    "fasterrcnn_mobilenet_v3_large_fpn": ("two-stage", "cnn", "mobile"),
    "fasterrcnn_mobilenet_v3_large_320_fpn": ("two-stage", "cnn", "mobile", "edge-friendly"),
    "retinanet_resnet50_fpn": ("one-stage", "cnn"),
    "retinanet_resnet50_fpn_v2": ("one-stage", "cnn"),
    "fcos_resnet50_fpn": ("one-stage", "anchor-free", "cnn"),
    "ssdlite320_mobilenet_v3_large": ("one-stage", "cnn", "mobile", "edge-friendly", "realtime"),
    "maskrcnn_resnet50_fpn": ("two-stage", "cnn"),
    "maskrcnn_resnet50_fpn_v2": ("two-stage", "cnn", "accurate"),
}
#: Builder-name prefix -> architecture family.
ARCHS: dict[str, str] = {
    "fasterrcnn": "fasterrcnn",
    "maskrcnn": "maskrcnn",
    "retinanet": "retinanet",
    "fcos": "fcos",
    "ssdlite": "ssdlite",
}
#: Model-class keywords that keep a two-stage model's RoI heads at capacity whatever its
#: (random) scores: no score threshold, and NMS at IoU 1 (only identical boxes merge).
AT_CAPACITY: dict[str, float] = {"rpn_score_thresh": 0.0, "rpn_nms_thresh": 1.0, "box_score_thresh": 0.0, "box_nms_thresh": 1.0}
#: One-stage heads are dense (their MACs do not depend on scores); a zero score threshold
#: only makes the whole post-processing run, so the operators it leaves uncounted are listed.
ONE_STAGE_FULL: dict[str, float] = {"score_thresh": 0.0}
#: Counts that may explain a published figure which differs from the capacity count: (what,
#: the keywords that produce it, the model classes it applies to).
EXPLANATIONS: tuple[tuple[str, dict[str, float], tuple[str, ...]], ...] = (
    ("no RoI proposals at all", {"rpn_score_thresh": 1.1}, ("FasterRCNN", "MaskRCNN")),
    ("no detections for the mask head", {"box_score_thresh": 1.1}, ("MaskRCNN",)),
)
TWO_STAGE = ("FasterRCNN", "MaskRCNN")

DATASET = "COCO val2017"
LICENCE = "BSD-3-Clause (torchvision)"


def _all_cards() -> tuple[ModelCard, ...]:
    if not DATA.is_file():
        return ()
    return tuple(ModelCard.from_dict(entry) for entry in json.loads(DATA.read_text(encoding="utf-8")))


@lru_cache(maxsize=4)
def detection_cards(task: str) -> tuple[ModelCard, ...]:
    """Cards for the builders of ``task``, from the committed data file (no torch import)."""
    return tuple(c for c in _all_cards() if task in c.tasks)


def arch_of(name: str) -> str:
    """The architecture family of a builder name (``fasterrcnn_resnet50_fpn`` -> ``fasterrcnn``)."""
    return next((arch for prefix, arch in ARCHS.items() if name.startswith(prefix)), name.split("_")[0])


def generate(names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Build and count every builder of :data:`visiontl_torchvision.detection.BUILDERS` (or only
    ``names``) and return the card dicts, in the order of the data file."""
    import torchvision
    from torchvision.models import get_model_weights

    from visiontl_torchvision.detection import BUILDERS

    entries = []
    for task, builders in BUILDERS.items():
        for name, (cls_name, size) in builders.items():
            if names is not None and name not in names:
                continue
            card = _card(name, cls_name, size, task, get_model_weights(name).DEFAULT, torchvision.__version__)
            entries.append(card.as_dict())
    return entries


def _kwargs(cls_name: str, **override: float) -> dict[str, Any]:
    # No weights of any kind: nothing is downloaded; the counts do not depend on them.
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None}
    kwargs.update(AT_CAPACITY if cls_name in TWO_STAGE else ONE_STAGE_FULL)
    return {**kwargs, **override}


def _report(name: str, size: int, kwargs: dict[str, Any]) -> ProfileReport:
    from torchvision.models import get_model

    from visiontl.selection.profile import profile_report

    return profile_report(lambda: get_model(name, **kwargs), (size, size), example=lambda x: [x[0]])


def _profile(name: str, cls_name: str, size: int) -> tuple[ProfileReport, str]:
    """The profile report and a sentence saying how it was counted."""
    import torch
    from torchvision.models import get_model

    kwargs = _kwargs(cls_name)
    report = _report(name, size, kwargs)
    how = f"MAC profile counted here at {size}x{size} with the 91-class COCO heads, " + (
        "on the meta device" if report.device == "meta" else "by a real CPU forward (NMS has data-dependent shapes)"
    )
    if cls_name in TWO_STAGE:
        with torch.device("meta"):
            model = get_model(name, **kwargs)  # read for its test-time limits only
        rois = model.rpn._post_nms_top_n["testing"]
        how += f"; RoI heads at test-time capacity ({rois} proposals"
        how += f", masks for {model.roi_heads.detections_per_img} detections)" if cls_name == "MaskRCNN" else ")"
    if report.uncounted:
        how += f"; not counted (no FLOP formula): {', '.join(report.uncounted)}"
    return report, how


def _explain(name: str, cls_name: str, size: int, published: float, counted: float) -> str:
    """Why torchvision's published GMACs differ from the capacity count, when a count under
    fewer RoIs reproduces it."""
    line = f"; counted {counted:.3f} GMACs vs torchvision's {published:g}"
    for why, override, classes in EXPLANATIONS:
        if cls_name not in classes:
            continue
        macs = _report(name, size, _kwargs(cls_name, **override)).profile.macs / 1e9
        if abs(macs - published) <= 0.001 * published:
            return line + f", which equals this model's count with {why}"
    return line


def _card(name: str, cls_name: str, size: int, task: str, weights: Any, version: str) -> ModelCard:
    meta = weights.meta
    source = str(meta.get("recipe") or "https://pytorch.org/vision/stable/models.html#object-detection")
    coco = meta.get("_metrics", {}).get("COCO-val2017", {})
    # The task's own figure first (listings show the first one).
    keys = ("mask_map", "box_map") if task == "instance_segmentation" else ("box_map", "mask_map")
    metrics = tuple(Figure(name=key, value=float(coco[key]), dataset=DATASET, source=source) for key in keys if key in coco)
    num_params = meta.get("num_params")
    ops = meta.get("_ops")
    report, how = _profile(name, cls_name, size)
    counted = report.profile.macs / 1e9
    notes = f"figures from torchvision {version} {weights} meta (mAP in percent; params and GMACs as published); {how}"
    if ops is not None and abs(counted - float(ops)) > 0.001 * float(ops):
        notes += _explain(name, cls_name, size, float(ops), counted)
    return ModelCard(
        id=f"torchvision:{name}",
        tasks=(task,),
        params_m=round(num_params / 1e6, 2) if num_params else None,
        gmacs=float(ops) if ops is not None else None,
        input_size=(size, size),
        metrics=metrics,
        licence=str(meta.get("license") or LICENCE),
        weights=(str(weights.url),),
        tags=TAGS.get(name, ()),
        notes=notes,
        arch=arch_of(name),
        profile=report.profile,
        extras={
            "weights_enum": str(weights),
            "file_size_mb": meta.get("_file_size"),
            "num_params": num_params,
            "torchvision": version,
            "gmacs_counted": round(counted, 3),
            "profile_device": report.device,
            "profile_uncounted": list(report.uncounted),
            "profile_source": f"measured: python -m visiontl_torchvision.detection_catalogue (torchvision {version})",
        },
    )


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``catalogue_detection.json``; ``--check`` only compares."""
    from visiontl.catalogue import write_or_check

    return write_or_check(DATA, generate(), "visiontl_torchvision.detection_catalogue", argv)


if __name__ == "__main__":
    raise SystemExit(main())
