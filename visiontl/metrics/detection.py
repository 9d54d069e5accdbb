"""One evaluator for every detector: COCO box (and mask) mAP with pycocotools.

Predictions of any family (torchvision, Ultralytics, a third party's) are scored by the same
code on the same inputs, so their numbers compare. Inputs follow the detection contract:

* outputs: per image ``{"boxes": [K, 4] xyxy, "scores": [K], "labels": [K] 0-based,
  "masks": [K, H, W] (or [K, 1, H, W]) in 0..1 or bool}``;
* targets: per image ``{"boxes": [N, 4] xyxy, "labels": [N], "iscrowd": [N] (optional),
  "masks": [N, H, W] (instance segmentation)}``.

Crowd regions (``iscrowd=1``) are handled as COCO does: detections on them are neither
true nor false positives. Class ``i`` is COCO category ``i + 1`` inside the evaluator only.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from visiontl.tasks.base import Evaluator

#: Binarisation threshold of soft predicted masks (torchvision's convention).
MASK_THRESHOLD = 0.5


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy() if value.dtype.is_floating_point else value.detach().cpu().numpy()
    return np.asarray(value)


def _binary_masks(masks: Any, count: int) -> np.ndarray:
    arr = _numpy(masks)
    if arr.ndim == 4:  # torchvision's [K, 1, H, W]
        arr = arr[:, 0]
    if arr.ndim != 3 or len(arr) != count:
        raise ValueError(f"masks must be [N, H, W] for {count} objects, got shape {tuple(arr.shape)}")
    return arr > MASK_THRESHOLD if arr.dtype != np.bool_ else arr


def _rles(masks: np.ndarray) -> list[dict[str, Any]]:
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    encoded = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return list(encoded)


def _xywh(boxes: np.ndarray) -> np.ndarray:
    out = boxes.astype(np.float64).reshape(-1, 4).copy()
    out[:, 2:] -= out[:, :2]
    return out


class DetectionEvaluator(Evaluator):
    """COCO mAP over a validation pass.

    Args:
        class_names: class names in label order.
        masks: also compute mask mAP (outputs and targets carry ``masks``).

    ``compute()`` returns ``map`` (box mAP@[.5:.95]), ``map50``, ``map75``, ``map_small``,
    ``map_medium``, ``map_large``, ``mar100``, ``map_per_class`` ({class: AP@[.5:.95], ``None``
    for classes absent from the ground truth}), ``num_images``, ``num_objects``,
    ``num_predictions``, and with masks ``mask_map``, ``mask_map50``, ``mask_map75``,
    ``mask_map_per_class``.

    Example:
        >>> ev = DetectionEvaluator(["person"])  # doctest: +SKIP
        >>> ev.update(model(images), targets)  # doctest: +SKIP
        >>> ev.compute()["map50"]  # doctest: +SKIP
    """

    def __init__(self, class_names: Sequence[str], masks: bool = False) -> None:
        self.class_names = list(class_names)
        self.masks = masks
        self._images: list[dict[str, Any]] = []
        self._gt: list[dict[str, Any]] = []
        self._dt: list[dict[str, Any]] = []
        self._dt_masks: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ accumulate
    def update(self, outputs: Any, targets: Any) -> None:
        """Add one batch: ``outputs`` and ``targets`` are lists of dicts, one per image."""
        if len(outputs) != len(targets):
            raise ValueError(f"{len(outputs)} outputs for {len(targets)} targets")
        for output, target in zip(outputs, targets, strict=True):
            self._add_image(output, target)

    def _add_image(self, output: dict[str, Any], target: dict[str, Any]) -> None:
        image_id = len(self._images) + 1
        gt_boxes = _numpy(target["boxes"]).reshape(-1, 4)
        gt_labels = _numpy(target["labels"]).reshape(-1).astype(np.int64)
        crowd = _numpy(target["iscrowd"]).reshape(-1) if "iscrowd" in target else np.zeros(len(gt_labels))
        height = width = 0
        gt_rles: list[dict[str, Any]] = []
        if self.masks:
            gt_masks = _binary_masks(target["masks"], len(gt_labels)) if len(gt_labels) else None
            if gt_masks is not None:
                height, width = gt_masks.shape[1:]
                gt_rles = _rles(gt_masks)
        if not height and "masks" in output and len(output["masks"]):
            height, width = _binary_masks(output["masks"], len(output["masks"])).shape[1:]
        self._images.append({"id": image_id, "height": int(height), "width": int(width)})
        xywh = _xywh(gt_boxes)
        for i in range(len(gt_labels)):
            ann: dict[str, Any] = {
                "id": len(self._gt) + 1,
                "image_id": image_id,
                "category_id": int(gt_labels[i]) + 1,
                "bbox": xywh[i].tolist(),
                "area": float(xywh[i, 2] * xywh[i, 3]),
                "iscrowd": int(crowd[i]),
            }
            if gt_rles:
                from pycocotools import mask as mask_utils

                ann["segmentation"] = gt_rles[i]
                # COCO's area is the object's mask area (it picks the small/medium/large range).
                ann["area"] = float(mask_utils.area(gt_rles[i]))
            self._gt.append(ann)

        boxes = _numpy(output["boxes"]).reshape(-1, 4)
        scores = _numpy(output["scores"]).reshape(-1)
        labels = _numpy(output["labels"]).reshape(-1).astype(np.int64)
        dt_xywh = _xywh(boxes)
        for i in range(len(scores)):
            self._dt.append({"image_id": image_id, "category_id": int(labels[i]) + 1, "bbox": dt_xywh[i].tolist(), "score": float(scores[i])})
        if self.masks and len(scores):
            for i, rle in enumerate(_rles(_binary_masks(output["masks"], len(scores)))):
                self._dt_masks.append({"image_id": image_id, "category_id": int(labels[i]) + 1, "segmentation": rle, "score": float(scores[i])})

    # ------------------------------------------------------------------ compute
    def _coco_gt(self) -> Any:
        from pycocotools.coco import COCO

        gt = COCO()
        gt.dataset = {
            "images": self._images,
            "annotations": self._gt,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names)],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
        return gt

    def _evaluate(self, gt: Any, results: list[dict[str, Any]], iou_type: str) -> dict[str, Any]:
        """COCOeval stats (``None`` where undefined) and per-class AP for one IoU type."""
        from pycocotools.cocoeval import COCOeval

        absent = self._absent_classes()
        if len(absent) == len(self.class_names):
            # No object to find: AP is undefined (pycocotools says -1), not zero.
            return {"stats": [None] * 12, "per_class": dict.fromkeys(self.class_names)}
        if not results:
            return {"stats": [0.0] * 12, "per_class": {n: (None if n in absent else 0.0) for n in self.class_names}}
        from visiontl.data.detection.masks import quiet_pycocotools

        with contextlib.redirect_stdout(io.StringIO()), quiet_pycocotools():
            dt = gt.loadRes(results)
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        # pycocotools says -1 where a figure is undefined (no object of that size): None.
        stats = [None if s < 0 else float(s) for s in ev.stats]
        precision = ev.eval["precision"]  # [IoU, recall, class, area, maxDets]
        per_class: dict[str, float | None] = {}
        for k, name in enumerate(self.class_names):
            p = precision[:, :, k, 0, -1]
            valid = p[p > -1]
            per_class[name] = float(valid.mean()) if valid.size else None
        return {"stats": stats, "per_class": per_class}

    def _absent_classes(self) -> set[str]:
        present = {a["category_id"] for a in self._gt if not a["iscrowd"]}
        return {n for i, n in enumerate(self.class_names) if i + 1 not in present}

    def compute(self) -> dict[str, Any]:
        """The metrics over every image added so far (see the class docstring)."""
        from visiontl.errors import DataError

        if not self._images:
            raise DataError("The validation set produced no predictions (every image was unreadable?).")
        gt = self._coco_gt()
        box = self._evaluate(gt, self._dt, "bbox")
        s = box["stats"]
        out: dict[str, Any] = {
            "map": s[0],
            "map50": s[1],
            "map75": s[2],
            "map_small": s[3],
            "map_medium": s[4],
            "map_large": s[5],
            "mar100": s[8],
            "map_per_class": box["per_class"],
            "num_images": len(self._images),
            "num_objects": sum(1 for a in self._gt if not a["iscrowd"]),
            "num_predictions": len(self._dt),
        }
        if self.masks:
            seg = self._evaluate(gt, self._dt_masks, "segm")
            m = seg["stats"]
            out.update({"mask_map": m[0], "mask_map50": m[1], "mask_map75": m[2], "mask_map_per_class": seg["per_class"]})
        return out
