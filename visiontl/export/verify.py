"""Checking an export against PyTorch on real images.

For every validation batch both models run through the task's own ``forward_eval``; their
outputs are compared (largest absolute difference, agreement of the predictions) and fed to
two evaluators, so the export's accuracy is the task's primary metric computed by the same
code as the PyTorch model's, on the same images.

Agreement by task: classification compares the top-1 class of each image; dense tasks the
arg-max class of each pixel; detection the objects: each PyTorch detection scoring at least
0.25, and the 10 best of each image whatever their score (so that an untrained detector is
compared too), agrees when the export has one of the same class with IoU >= 0.5; for the
matched ones the IoU of the two boxes (lowest and mean) and, with instance masks, the share of
pixels on which the two masks (thresholded at 0.5) agree are reported too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from visiontl.tasks.base import Batch, TaskAdapter

#: Detections scoring at least this are compared ...
DETECTION_SCORE = 0.25
#: ... and so are the best few of every image, whatever their score.
DETECTION_TOP = 10


#: One-value outputs (regressions) agree when within this relative and absolute tolerance.
VALUE_RTOL = 0.01
VALUE_ATOL = 1e-3

@dataclass
class Comparison:
    """How an export compared with PyTorch on real images.

    Attributes:
        images: images compared.
        max_abs_diff: the largest absolute difference of any raw output value.
        mean_abs_diff: the mean absolute difference of the raw outputs.
        agreement: share of predictions that agree (see ``unit``).
        unit: what ``agreement`` counts: ``images (top-1)``, ``pixels (arg-max)``, ``objects``.
        compared: how many predictions were compared.
        disagreements: image paths whose prediction differs (first 20).
        primary_metric: the task's metric.
        reference: metrics of the PyTorch fp32 model (scalars).
        exported: metrics of the export (scalars).
        seconds: time the comparison took.
        matched_iou: detection: ``{"min", "mean"}`` IoU of matched PyTorch/export boxes.
        mask_pixel_agreement: instance segmentation: share of pixels of matched masks that agree.
    """

    images: int = 0
    max_abs_diff: float = 0.0
    mean_abs_diff: float = 0.0
    agreement: float = 1.0
    unit: str = ""
    compared: int = 0
    disagreements: list[str] = field(default_factory=list)
    primary_metric: str = ""
    reference: dict[str, Any] = field(default_factory=dict)
    exported: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    matched_iou: dict[str, float] = field(default_factory=dict)
    mask_pixel_agreement: float | None = None

    @property
    def delta(self) -> float:
        """Export minus PyTorch on the primary metric."""
        return float(self.exported.get(self.primary_metric, math.nan)) - float(self.reference.get(self.primary_metric, math.nan))

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images, "max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff,
            "agreement": self.agreement, "agreement_unit": self.unit, "compared": self.compared,
            "disagreements": list(self.disagreements), "primary_metric": self.primary_metric,
            "pytorch_fp32": self.reference, "export": self.exported, "delta": self.delta, "deltas": self.deltas(),
            "seconds": round(self.seconds, 2),
            **({"matched_iou": self.matched_iou} if self.matched_iou else {}),
            **({"mask_pixel_agreement": self.mask_pixel_agreement} if self.mask_pixel_agreement is not None else {}),
        }

    def deltas(self) -> dict[str, float]:
        """Export minus PyTorch on every score both have (the accuracy cost of the export's
        precision, metric by metric; counts such as ``num_images`` are left out)."""
        return {k: float(self.exported[k]) - float(v) for k, v in self.reference.items()
                if k in self.exported and not k.startswith("num_")}


class _Tally:
    def __init__(self) -> None:
        self.max_abs = 0.0
        self.abs_sum = 0.0
        self.abs_count = 0
        self.agree = 0
        self.total = 0
        self.unit = ""
        self.disagreements: list[str] = []
        self.ious: list[float] = []
        self.mask_agree = 0
        self.mask_pixels = 0

    def values(self, a: torch.Tensor, b: torch.Tensor) -> None:
        if a.shape != b.shape:
            raise AssertionError(f"export output shape {tuple(b.shape)} differs from PyTorch's {tuple(a.shape)}")
        diff = (a.float() - b.float()).abs()
        if diff.numel():
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.abs_sum += float(diff.sum())
            self.abs_count += diff.numel()


def _compare_tensors(tally: _Tally, ref: torch.Tensor, exp: torch.Tensor, paths: list[str], per_image_dim: int) -> None:
    tally.values(ref, exp)
    if ref.ndim == 2 and ref.shape[1] == 1:  # (batch, 1): one value per image (a regression)
        # Top-1 of one output always agrees: compare the values themselves instead.
        tally.unit = f"values (|export - PyTorch| <= {VALUE_RTOL:g} x |PyTorch| + {VALUE_ATOL:g})"
        same = ((ref.float() - exp.float()).abs() <= VALUE_RTOL * ref.float().abs() + VALUE_ATOL).reshape(-1)
        tally.agree += int(same.sum())
        tally.total += int(same.numel())
        tally.disagreements += [p for p, s in zip(paths, same.tolist(), strict=False) if not s]
    elif ref.ndim == 2:  # (batch, classes): one prediction per image
        tally.unit = "images (top-1)"
        same = ref.argmax(1) == exp.argmax(1)
        tally.agree += int(same.sum())
        tally.total += int(same.numel())
        tally.disagreements += [p for p, s in zip(paths, same.tolist(), strict=False) if not s]
    elif ref.ndim >= 3:  # dense: one prediction per pixel
        tally.unit = "pixels (arg-max)"
        same = ref.argmax(per_image_dim) == exp.argmax(per_image_dim)
        tally.agree += int(same.sum())
        tally.total += int(same.numel())


def _box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import box_iou

    return box_iou(a.float(), b.float())


def _compare_detections(tally: _Tally, ref: dict[str, torch.Tensor], exp: dict[str, torch.Tensor], path: str) -> None:
    tally.unit = "objects (same class, IoU >= 0.5)"
    keep = ref["scores"] >= DETECTION_SCORE
    keep[ref["scores"].argsort(descending=True)[:DETECTION_TOP]] = True
    boxes, labels, scores = ref["boxes"][keep], ref["labels"][keep], ref["scores"][keep]
    if len(boxes) == 0:
        return
    tally.total += len(boxes)
    if len(exp["boxes"]) == 0:
        tally.disagreements.append(path)
        return
    iou = _box_iou(boxes, exp["boxes"])
    iou[labels[:, None] != exp["labels"][None, :]] = 0.0
    best, index = iou.max(1)
    matched = best >= 0.5
    tally.agree += int(matched.sum())
    if matched.any():
        tally.values(boxes[matched], exp["boxes"][index[matched]])
        tally.values(scores[matched], exp["scores"][index[matched]])
        tally.ious += best[matched].tolist()
        if "masks" in ref and "masks" in exp:
            a = ref["masks"][keep][matched] >= 0.5
            b = exp["masks"][index[matched]] >= 0.5
            if a.shape == b.shape:
                tally.mask_agree += int((a == b).sum())
                tally.mask_pixels += a.numel()
    if not bool(matched.all()):
        tally.disagreements.append(path)


def _compare(tally: _Tally, ref: Any, exp: Any, paths: list[str]) -> None:
    if isinstance(ref, torch.Tensor):
        _compare_tensors(tally, ref, exp, paths, per_image_dim=1)
    elif isinstance(ref, (list, tuple)) and ref and isinstance(ref[0], dict):
        for r, e, p in zip(ref, exp, paths, strict=True):
            _compare_detections(tally, r, e, p)
    elif isinstance(ref, (list, tuple)):
        for r, e, p in zip(ref, exp, paths, strict=True):
            before = tally.agree, tally.total
            _compare_tensors(tally, r, e, [p], per_image_dim=0)
            if (tally.agree - before[0]) != (tally.total - before[1]):
                tally.disagreements.append(p)
    else:
        raise AssertionError(f"cannot compare outputs of type {type(ref).__name__}")


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def compare(reference: nn.Module, exported: nn.Module, task: TaskAdapter, evaluators: tuple[Any, Any],
            batches: Iterable[Batch], primary_metric: str) -> Comparison:
    """Run both models over ``batches`` and compare them.

    Args:
        reference: the PyTorch model (fp32, eval mode).
        exported: the export as a module (:class:`~visiontl.export.runtime.RuntimeModule`).
        task: the task adapter (``forward_eval``).
        evaluators: two fresh evaluators of the task (PyTorch's, the export's).
        batches: collated validation batches.
        primary_metric: the metric reported side by side.
    """
    started = time.perf_counter()
    tally = _Tally()
    images = 0
    reference.eval()
    with torch.no_grad():
        for batch in batches:
            ref = task.forward_eval(reference, batch)
            exp = task.forward_eval(exported, batch)
            evaluators[0].update(ref, batch.targets)
            evaluators[1].update(exp, batch.targets)
            _compare(tally, ref, exp, list(batch.paths))
            images += len(batch)
    return Comparison(
        images=images,
        max_abs_diff=tally.max_abs,
        mean_abs_diff=tally.abs_sum / tally.abs_count if tally.abs_count else 0.0,
        agreement=tally.agree / tally.total if tally.total else 1.0,
        unit=tally.unit,
        compared=tally.total,
        disagreements=tally.disagreements[:20],
        primary_metric=primary_metric,
        reference=_scalars(evaluators[0].compute()),
        exported=_scalars(evaluators[1].compute()),
        seconds=time.perf_counter() - started,
        matched_iou={"min": min(tally.ious), "mean": sum(tally.ious) / len(tally.ious)} if tally.ious else {},
        mask_pixel_agreement=tally.mask_agree / tally.mask_pixels if tally.mask_pixels else None,
    )


def evaluate(model: nn.Module, task: TaskAdapter, evaluator: Any, batches: Iterable[Batch]) -> dict[str, Any]:
    """The task's scalar metrics of ``model`` over ``batches`` (used by the benchmark's accuracy)."""
    with torch.no_grad():
        for batch in batches:
            evaluator.update(task.forward_eval(model, batch), batch.targets)
    return _scalars(evaluator.compute())
