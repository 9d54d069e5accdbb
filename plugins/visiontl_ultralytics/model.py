"""The visiontl detection contract around an Ultralytics YOLO network.

:class:`YoloModel` holds the Ultralytics ``DetectionModel``/``SegmentationModel`` as ``net`` and
answers the two calls every visiontl detector answers:

* train mode, ``model(images, targets) -> {loss name: tensor}``: the images (different sizes
  allowed) are padded bottom-right to a common stride multiple, the targets become Ultralytics'
  batch dict (``batch_idx``, ``cls``, normalised ``xywh`` boxes, per-object masks at the
  prototype resolution) and Ultralytics' own criterion computes the terms exactly as its
  trainer does (each already multiplied by the batch size, as Ultralytics back-propagates them);
* eval mode, ``model(images) -> [{boxes, scores, labels[, masks]}]``: letterbox to ``imgsz``,
  forward, Ultralytics' NMS and mask assembly, then boxes and masks mapped back to each input
  image's pixels. A 4-D tensor batch is accepted too (the benchmark harness passes one).

Crowd regions (``iscrowd == 1``) are left out of the training targets; the evaluator handles
them. Class indices are 0-based on both sides, as in Ultralytics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Grey of Ultralytics' letterbox padding (114 of 255).
PAD_VALUE = 114.0 / 255.0


class YoloModel(nn.Module):
    """An Ultralytics YOLO network behind visiontl's detection contract.

    Args:
        net: the Ultralytics ``DetectionModel`` or ``SegmentationModel``.
        segment: whether the head predicts instance masks.
        imgsz: square size images are letterboxed to in eval mode.
        conf: lowest score kept by NMS (low, for mAP; ``predict`` filters by its own threshold).
        iou: NMS IoU threshold (Ultralytics' validation default 0.7).
        max_det: detections kept per image.
        mask_ratio: training masks are downsampled by this factor (Ultralytics' ``mask_ratio``).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        segment: bool,
        imgsz: int = 640,
        conf: float = 0.001,
        iou: float = 0.7,
        max_det: int = 300,
        mask_ratio: int = 4,
    ) -> None:
        super().__init__()
        self.net = net
        self.segment = segment
        # A buffer, so that checkpoints carry the size the model was trained at and a model
        # rebuilt from its recipe (which may not name the size) predicts at it.
        self.register_buffer("input_size", torch.tensor(int(imgsz)), persistent=True)
        self.conf = float(conf)
        self.iou = float(iou)
        self.max_det = int(max_det)
        self.mask_ratio = int(mask_ratio)
        self._criterion: Any = None
        self._criterion_key: tuple[Any, ...] | None = None

    # ------------------------------------------------------------------ facts
    @property
    def imgsz(self) -> int:
        """Square size images are letterboxed to in eval mode."""
        return int(self.input_size)

    @imgsz.setter
    def imgsz(self, value: int) -> None:
        self.input_size.fill_(int(value))

    @property
    def num_classes(self) -> int:
        """Classes of the head."""
        return int(self.net.model[-1].nc)

    @property
    def stride(self) -> int:
        """The largest stride of the network (input sizes are padded to a multiple of it)."""
        return max(int(self.net.stride.max()), 32)

    def with_net(self, net: nn.Module) -> YoloModel:
        """The same wrapper settings around another network (e.g. the trainer's EMA copy)."""
        return YoloModel(net, segment=self.segment, imgsz=self.imgsz, conf=self.conf, iou=self.iou,
                         max_det=self.max_det, mask_ratio=self.mask_ratio)

    # ------------------------------------------------------------------ forward
    def forward(self, images: Sequence[torch.Tensor] | torch.Tensor, targets: Sequence[dict[str, torch.Tensor]] | None = None) -> Any:
        if self.training:
            if targets is None:
                raise ValueError("YoloModel in train mode needs targets: model(images, targets) -> loss dict")
            return self.losses(images, targets)
        return self.detect(images)

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device

    def criterion(self) -> Any:
        """Ultralytics' loss for this network, built once per device and settings."""
        device = self._device()
        args = getattr(self.net, "args", None)
        key = (device, id(args), self.segment)
        if self._criterion is None or self._criterion_key != key:
            if args is None:
                from ultralytics.cfg import get_cfg

                self.net.args = get_cfg()
            criterion = self.net.init_criterion()
            if self.segment:
                # Masks are given per object (not Ultralytics' overlapping index masks).
                criterion.overlap = False
            self._criterion, self._criterion_key = criterion, key
        return self._criterion

    def losses(self, images: Sequence[torch.Tensor] | torch.Tensor, targets: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Ultralytics' loss terms (box, cls, dfl; seg too for segmentation) for one batch."""
        device = self._device()
        batch = ultralytics_batch(_as_list(images), targets, self.stride, self.segment, self.mask_ratio, device)
        preds = self.net(batch["img"])
        criterion = self.criterion()
        total, _ = criterion(preds, batch)
        names = list(criterion.loss_names)
        return {name: total[i] for i, name in enumerate(names) if i < len(total)}

    def detect(self, images: Sequence[torch.Tensor] | torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Predictions per image in its own pixel coordinates (eval mode)."""
        from ultralytics.utils.nms import non_max_suppression
        from ultralytics.utils.ops import process_mask

        device = self._device()
        dtype = next(self.net.parameters()).dtype
        items = [_as_float(im).to(device) for im in _as_list(images)]
        if not items:
            return []
        canvas, frames = letterbox_batch(items, self.imgsz)
        out = self.net(canvas.to(dtype))
        first = out[0] if isinstance(out, (tuple, list)) else out
        proto = None
        if self.segment:
            first, proto = first[0], first[1]
        dets = non_max_suppression(
            first, self.conf, self.iou, max_det=self.max_det, nc=self.num_classes, max_time_img=0.5
        )
        results: list[dict[str, torch.Tensor]] = []
        for i, (det, frame) in enumerate(zip(dets, frames, strict=True)):
            det = det.float()
            boxes_lb = det[:, :4]
            result = {
                "boxes": frame.unletterbox_boxes(boxes_lb),
                "scores": det[:, 4].contiguous(),
                "labels": det[:, 5].long(),
            }
            if self.segment:
                assert proto is not None
                masks = process_mask(proto[i], det[:, 6:], boxes_lb, canvas.shape[-2:], upsample=True)
                result["masks"] = frame.unletterbox_masks(masks)
            results.append(result)
        return results


# ---------------------------------------------------------------------- geometry


class Frame:
    """Where one image sits in its letterboxed canvas (to map predictions back)."""

    def __init__(self, height: int, width: int, new_h: int, new_w: int, top: int, left: int) -> None:
        self.height, self.width = height, width
        self.new_h, self.new_w = new_h, new_w
        self.top, self.left = top, left

    def unletterbox_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Canvas xyxy -> the original image's xyxy, clipped to it."""
        gx, gy = self.new_w / self.width, self.new_h / self.height
        out = boxes.clone()
        out[:, [0, 2]] = ((out[:, [0, 2]] - self.left) / gx).clamp_(0, self.width)
        out[:, [1, 3]] = ((out[:, [1, 3]] - self.top) / gy).clamp_(0, self.height)
        return out

    def unletterbox_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """Canvas masks ``[K, S, S]`` -> boolean masks ``[K, H, W]`` of the original image."""
        if masks.shape[0] == 0:
            return torch.zeros((0, self.height, self.width), dtype=torch.bool, device=masks.device)
        inner = masks[:, self.top:self.top + self.new_h, self.left:self.left + self.new_w].float()
        if (self.new_h, self.new_w) != (self.height, self.width):
            inner = F.interpolate(inner[None], (self.height, self.width), mode="bilinear", align_corners=False)[0]
        return inner > 0.5


def letterbox_batch(images: Sequence[torch.Tensor], size: int) -> tuple[torch.Tensor, list[Frame]]:
    """Resize each image so its longer side is ``size`` (aspect kept), centred on a grey square."""
    canvas = images[0].new_full((len(images), 3, size, size), PAD_VALUE)
    frames: list[Frame] = []
    for i, image in enumerate(images):
        h, w = int(image.shape[-2]), int(image.shape[-1])
        r = min(size / h, size / w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        resized = image[None]
        if (nh, nw) != (h, w):
            # antialias when shrinking, like the area interpolation Ultralytics validates with
            resized = F.interpolate(resized, (nh, nw), mode="bilinear", align_corners=False, antialias=r < 1)
        top, left = (size - nh) // 2, (size - nw) // 2
        canvas[i, :, top:top + nh, left:left + nw] = resized[0].clamp(0, 1)
        frames.append(Frame(h, w, nh, nw, top, left))
    return canvas, frames


def ultralytics_batch(
    images: Sequence[torch.Tensor],
    targets: Sequence[dict[str, torch.Tensor]],
    stride: int,
    segment: bool,
    mask_ratio: int,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """visiontl images and targets -> the batch dict Ultralytics' criterion reads.

    Images keep their pixels: each is placed at the top-left of a grey canvas whose sides are
    the batch's largest, rounded up to ``stride``, so absolute boxes stay valid; boxes become
    ``xywh`` normalised by the canvas size.
    """
    if len(images) != len(targets):
        raise ValueError(f"{len(images)} images but {len(targets)} targets")
    items = [_as_float(im).to(device) for im in images]
    height = math.ceil(max(int(im.shape[-2]) for im in items) / stride) * stride
    width = math.ceil(max(int(im.shape[-1]) for im in items) / stride) * stride
    img = items[0].new_full((len(items), 3, height, width), PAD_VALUE)
    batch_idx, classes, boxes, masks = [], [], [], []
    scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=device)
    for i, (image, target) in enumerate(zip(items, targets, strict=True)):
        h, w = int(image.shape[-2]), int(image.shape[-1])
        img[i, :, :h, :w] = image
        xyxy = target["boxes"].to(device, torch.float32).reshape(-1, 4)
        keep = torch.ones(len(xyxy), dtype=torch.bool, device=device)
        if "iscrowd" in target and len(target["iscrowd"]):
            keep &= target["iscrowd"].to(device).reshape(-1) == 0
        xyxy = xyxy[keep]
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clamp(0, w)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clamp(0, h)
        xywh = torch.stack(((xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2,
                            xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]), 1)
        boxes.append(xywh / scale)
        classes.append(target["labels"].to(device).reshape(-1)[keep].float())
        batch_idx.append(torch.full((len(xyxy),), float(i), device=device))
        if segment:
            object_masks = target["masks"].to(device)[keep].float()
            canvas = object_masks.new_zeros((len(object_masks), height, width))
            canvas[:, :h, :w] = object_masks
            masks.append(canvas)
    batch: dict[str, torch.Tensor] = {
        "img": img,
        "batch_idx": torch.cat(batch_idx),
        "cls": torch.cat(classes).view(-1, 1),
        "bboxes": torch.cat(boxes).view(-1, 4),
    }
    if segment:
        full = torch.cat(masks) if masks else img.new_zeros((0, height, width))
        if mask_ratio > 1 and len(full):
            full = F.interpolate(full[None], (height // mask_ratio, width // mask_ratio), mode="bilinear", align_corners=False)[0]
        elif mask_ratio > 1:
            full = full.new_zeros((0, height // mask_ratio, width // mask_ratio))
        batch["masks"] = (full > 0.5).float()
    return batch


def _as_list(images: Sequence[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        if images.ndim == 3:
            return [images]
        if images.ndim != 4:
            raise ValueError(f"expected images [B,3,H,W] or a list of [3,H,W], got a tensor of shape {tuple(images.shape)}")
        return list(images.unbind(0))
    return list(images)


def _as_float(image: torch.Tensor) -> torch.Tensor:
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    return image.float() if not image.is_floating_point() else image
