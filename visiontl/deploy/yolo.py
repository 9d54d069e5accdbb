"""YOLO post-processing in numpy: letterbox, box decoding, class-wise NMS, masks from prototypes.

Ultralytics exports the network only: a letterboxed ``[B, 3, S, S]`` image in 0..1 in, and
out ``[B, 4 + nc (+ nm), N]`` predictions (boxes as centre ``xywh`` in canvas pixels,
already decoded from the anchor grid and DFL inside the graph; class scores after the
sigmoid; ``nm`` mask coefficients) and, for segmentation, ``[B, nm, S/4, S/4]`` prototypes.
This module does what :class:`visiontl_ultralytics.model.YoloModel` does after the network,
step for step as Ultralytics' ``non_max_suppression`` and ``process_mask``:

1. candidates whose best class scores above ``conf``; boxes to ``xyxy``; the best class;
2. at most ``max_nms`` by score; class-wise greedy NMS at ``iou`` (classes ``max_wh`` apart);
   the first ``max_det`` kept;
3. masks: coefficients x prototypes, bilinear to the canvas, ``> 0``, cut to the box;
4. back to the image: boxes un-letterboxed and clipped; masks cropped to the letterbox's
   content, resized (bilinear) to the image, ``> 0.5``.

The parameters come from the manifest (``extras``: ``conf``, ``iou``, ``max_det`` ...), which
the Ultralytics plugin writes from the model's own settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from visiontl.deploy.backends import Session
from visiontl.deploy.boxes import batched_nms
from visiontl.deploy.detections import Detections
from visiontl.deploy.imageops import bilinear, resize_float

#: Grey of Ultralytics' letterbox padding (114 of 255).
PAD_VALUE = 114.0 / 255.0


@dataclass(frozen=True)
class YoloSettings:
    """NMS and mask settings (Ultralytics' names; defaults as ``YoloModel``'s)."""

    imgsz: int = 640
    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    max_nms: int = 30000
    max_wh: float = 7680.0
    num_classes: int = 0
    segment: bool = False

    @classmethod
    def from_manifest(cls, extras: dict[str, Any], imgsz: int, num_classes: int, segment: bool) -> YoloSettings:
        def pick(name: str, default: Any) -> Any:
            value = extras.get(name)
            return default if value is None else value

        return cls(int(pick("imgsz", imgsz)), float(pick("conf", cls.conf)), float(pick("iou", cls.iou)), int(pick("max_det", cls.max_det)),
                   int(pick("max_nms", cls.max_nms)), float(pick("max_wh", cls.max_wh)), int(pick("num_classes", num_classes)),
                   bool(pick("segment", segment)))


@dataclass(frozen=True)
class Frame:
    """Where one image sits in its letterboxed canvas."""

    height: int
    width: int
    new_h: int
    new_w: int
    top: int
    left: int

    def unletterbox_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Canvas xyxy -> the image's xyxy, clipped to it."""
        gx, gy = self.new_w / self.width, self.new_h / self.height
        out = np.asarray(boxes, dtype=np.float32).copy()
        out[:, [0, 2]] = np.clip((out[:, [0, 2]] - self.left) / np.float32(gx), 0, self.width)
        out[:, [1, 3]] = np.clip((out[:, [1, 3]] - self.top) / np.float32(gy), 0, self.height)
        return out

    def unletterbox_masks(self, masks: np.ndarray) -> np.ndarray:
        """Canvas masks ``[K, S, S]`` -> bool masks ``[K, H, W]`` of the image."""
        inner = masks[:, self.top : self.top + self.new_h, self.left : self.left + self.new_w].astype(np.float32)
        if (self.new_h, self.new_w) != (self.height, self.width):
            inner = bilinear(inner, (self.height, self.width))
        return inner > 0.5


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Frame]:
    """A ``[3, H, W]`` 0..1 image scaled so its longer side is ``size`` (aspect kept; antialiased
    when shrinking, as Ultralytics validates), centred on a grey ``[3, size, size]`` canvas."""
    h, w = int(image.shape[-2]), int(image.shape[-1])
    r = min(size / h, size / w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    resized = image
    if (nh, nw) != (h, w):
        resized = resize_float(image, (nh, nw)) if r < 1 else bilinear(image, (nh, nw))
    canvas = np.full((3, size, size), PAD_VALUE, dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[:, top : top + nh, left : left + nw] = np.clip(resized, 0, 1)
    return canvas, Frame(h, w, nh, nw, top, left)


def non_max_suppression(prediction: np.ndarray, settings: YoloSettings) -> np.ndarray:
    """One image's ``[4 + nc + nm, N]`` predictions -> ``[K, 6 + nm]`` rows ``x1, y1, x2, y2,
    score, class, coefficients...`` kept by class-wise NMS, best first."""
    nc = settings.num_classes or prediction.shape[0] - 4
    x = np.asarray(prediction, dtype=np.float32).T  # [N, 4 + nc + nm]
    x = x[x[:, 4 : 4 + nc].max(1) > settings.conf]
    if not len(x):
        return np.zeros((0, 6 + prediction.shape[0] - 4 - nc), dtype=np.float32)
    xy, half = x[:, :2], x[:, 2:4] / np.float32(2.0)
    box = np.concatenate((xy - half, xy + half), 1)
    cls = x[:, 4 : 4 + nc]
    j = cls.argmax(1)
    conf = cls[np.arange(len(cls)), j]
    rows = np.concatenate((box, conf[:, None], j[:, None].astype(np.float32), x[:, 4 + nc :]), 1)[conf > settings.conf]
    if len(rows) > settings.max_nms:
        rows = rows[np.argsort(-rows[:, 4], kind="stable")[: settings.max_nms]]
    keep = batched_nms(rows[:, :4], rows[:, 4], rows[:, 5], settings.iou, settings.max_wh, limit=settings.max_det)
    return rows[keep[: settings.max_det]]


def masks_from_prototypes(protos: np.ndarray, coefficients: np.ndarray, boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Binary ``uint8 [K, H, W]`` masks at the canvas size ``shape`` (``process_mask`` with
    ``upsample=True``): prototypes combined, resized bilinear, ``> 0``, zero outside each box."""
    c, mh, mw = protos.shape
    k = len(coefficients)
    if not k:
        return np.zeros((0, *shape), dtype=np.uint8)
    logits = (np.asarray(coefficients, dtype=np.float32) @ protos.astype(np.float32).reshape(c, -1)).reshape(k, mh, mw)
    masks = (bilinear(logits, shape) > 0).astype(np.uint8)
    cols = np.arange(shape[1], dtype=np.float32)[None, None, :]
    rows = np.arange(shape[0], dtype=np.float32)[None, :, None]
    x1, y1, x2, y2 = (boxes[:, i, None, None].astype(np.float32) for i in range(4))
    return masks * ((cols >= x1) & (cols < x2)) * ((rows >= y1) & (rows < y2))


class YoloDetector:
    """An Ultralytics network export with its post-processing.

    Args:
        session: the engine.
        settings: NMS and mask settings.
        mask_chunk: masks are assembled this many at a time (full-canvas float buffers).
    """

    def __init__(self, session: Session, settings: YoloSettings, mask_chunk: int = 16) -> None:
        self.session = session
        self.settings = settings
        self.mask_chunk = mask_chunk

    def __call__(self, image: np.ndarray, keep: float | None = None) -> Detections:
        """Detections of one ``[3, H, W]`` 0..1 image in its pixels.

        Args:
            keep: assemble masks only for detections scoring at least this (``predict`` lists
                no others; masks are per detection, so the ones kept do not change).
        """
        canvas, frame = letterbox(image, self.settings.imgsz)
        outputs = self.session.run(canvas[None])
        rows = non_max_suppression(outputs[0][0], self.settings)
        boxes_lb = rows[:, :4]
        dets = Detections(frame.unletterbox_boxes(boxes_lb), rows[:, 4].copy(), rows[:, 5].astype(np.int64))
        if not self.settings.segment:
            return dets
        chosen = np.arange(len(rows)) if keep is None else np.flatnonzero(rows[:, 4] >= keep)
        dets = dets.select(chosen)
        protos = outputs[1][0]
        masks = np.zeros((len(chosen), frame.height, frame.width), dtype=bool)
        for start in range(0, len(chosen), self.mask_chunk):
            part = chosen[start : start + self.mask_chunk]
            canvas_masks = masks_from_prototypes(protos, rows[part, 6:], boxes_lb[part], canvas.shape[-2:])
            masks[start : start + len(part)] = frame.unletterbox_masks(canvas_masks)
        dets.masks = masks
        return dets
