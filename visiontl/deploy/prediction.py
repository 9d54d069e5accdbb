"""What the runtime's ``predict`` returns: a plain dataclass, the same for every task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Prediction:
    """One image's prediction.

    Attributes:
        labels: class names: the top-k classes (classification), one per object
            (detection), or the classes present, largest area first (segmentation).
        scores: one number per label: a probability, an object's score, or an area fraction
            (see ``score``).
        score: what ``scores`` hold: ``probability``, ``score`` or ``area``.
        boxes: detection: float32 ``[K, 4]`` xyxy in the image's pixels; else ``[0, 4]``.
        masks: instance segmentation: bool ``[K, H, W]``, one per object; else ``None``.
        label_map: semantic segmentation: int64 ``[H, W]`` class index per pixel; else ``None``.
        areas: semantic segmentation: ``{class: share of the pixels}``; instance
            segmentation: ``{"pixels": [...]}`` one count per object; else empty.
        size: the image's ``(height, width)``.
        path: the image file, when predicted from a file.
        extra: task details (``inference`` used by a segmenter ...).
    """

    labels: list[str]
    scores: list[float]
    score: str = "probability"
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32), repr=False)
    masks: np.ndarray | None = field(default=None, repr=False)
    label_map: np.ndarray | None = field(default=None, repr=False)
    areas: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def top(self) -> list[tuple[str, float]]:
        """``(label, score)`` pairs, as ``visiontl predict`` prints them."""
        return list(zip(self.labels, self.scores, strict=True))

    def details(self) -> dict[str, Any]:
        """JSON-friendly details in the form ``visiontl predict --json`` gives for a run:
        detection ``boxes``, ``scores``, ``classes`` (and ``masks`` as COCO RLEs with their
        ``areas``); segmentation ``areas``, ``size`` and ``inference``."""
        if self.score == "score":
            out: dict[str, Any] = {"boxes": [[round(float(v), 2) for v in box] for box in self.boxes],
                                   "scores": [round(float(s), 4) for s in self.scores], "classes": list(self.labels)}
            if self.masks is not None:
                from visiontl.data.detection.masks import mask_to_rle

                out["masks"] = [mask_to_rle(m) for m in self.masks]
                out["areas"] = [int(m.sum()) for m in self.masks]
            return out
        if self.score == "area":
            return {"areas": dict(self.areas), "size": list(self.size), **self.extra}
        return dict(self.extra)
