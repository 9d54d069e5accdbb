"""The detection dataset: records -> ``(image, target)`` items in the detection contract.

An item is ``(image, target)``: ``image`` float32 ``[3, H, W]`` in 0..1 (not normalised) at
the (possibly resized and augmented) size, ``target`` a dict with ``boxes`` float32 ``[N, 4]``
xyxy in that image's pixels, ``labels`` int64 ``[N]`` 0-based, ``iscrowd`` int64 ``[N]``,
``masks`` uint8 ``[N, H, W]`` (instance segmentation only), ``image_id`` (the dataset index)
and ``path`` (moved into ``Batch.paths`` by the task's collate). A file that cannot be decoded
gives an :class:`~visiontl.data.classification.Unreadable` marker instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from visiontl.data.classification import Unreadable
from visiontl.data.detection.masks import record_masks
from visiontl.data.detection.records import DetectionRecord
from visiontl.data.images import UnreadableImage, load_rgb


class DetectionDataset:
    """Items of the detection contract from :class:`DetectionRecord` objects.

    Args:
        records: the images and their objects.
        transform: from :func:`visiontl.data.detection.transforms.detection_transform`.
        masks: produce ``masks`` (instance segmentation).
        keep_crowd: keep COCO crowd regions (evaluation); training drops them, as
            torchvision's reference scripts do, since a crowd box is no single object.
    """

    def __init__(
        self,
        records: Sequence[DetectionRecord],
        transform: Callable[[Any], Any],
        masks: bool = False,
        keep_crowd: bool = True,
    ) -> None:
        self.records = list(records)
        self.transform = transform
        self.masks = masks
        self.keep_crowd = keep_crowd

    def __len__(self) -> int:
        return len(self.records)

    def sample(self, index: int) -> dict[str, Any] | Unreadable:
        """The untransformed sample dict of tv_tensors (what the transform receives)."""
        import torch
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F

        record = self.records[index]
        try:
            image = load_rgb(record.path)
        except UnreadableImage as exc:
            return Unreadable(index, str(record.path), str(exc))
        keep = np.ones(len(record), dtype=bool) if self.keep_crowd else record.iscrowd == 0
        width, height = image.size
        boxes = record.boxes[keep]
        if (width, height) != (record.width, record.height):
            # The file changed since the labels were read (or COCO declared another size):
            # scale the boxes with it rather than train on misplaced ones.
            boxes = boxes * np.asarray([width / record.width, height / record.height] * 2, dtype=np.float32)
        sample: dict[str, Any] = {
            "image": tv_tensors.Image(F.pil_to_tensor(image)),
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(np.ascontiguousarray(boxes)), format="XYXY", canvas_size=(height, width)),
            "labels": torch.from_numpy(record.labels[keep].copy()),
            "iscrowd": torch.from_numpy(record.iscrowd[keep].copy()),
        }
        if self.masks:
            m = record_masks(record)[keep]
            if m.shape[1:] != (height, width):
                m = _resize_nearest(m, height, width)
            sample["masks"] = tv_tensors.Mask(torch.from_numpy(m))
        return sample

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]] | Unreadable:
        sample = self.sample(index)
        if isinstance(sample, Unreadable):
            return sample
        out = self.transform(sample)
        target: dict[str, Any] = {
            "boxes": out["boxes"].as_subclass(_tensor()).float(),
            "labels": out["labels"],
            "iscrowd": out["iscrowd"],
            "image_id": index,
            "path": str(self.records[index].path),
        }
        if self.masks:
            target["masks"] = out["masks"].as_subclass(_tensor()).to(dtype=_uint8())
        return out["image"].as_subclass(_tensor()), target


def _tensor() -> type:
    import torch

    return torch.Tensor


def _uint8() -> Any:
    import torch

    return torch.uint8


def _resize_nearest(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = masks.shape[1:]
    rows = (np.arange(height) * h // max(1, height)).clip(0, h - 1)
    cols = (np.arange(width) * w // max(1, width)).clip(0, w - 1)
    return masks[:, rows][:, :, cols]
