"""What every detector family hands the detection predictor: one image's detections."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """One image's detections in the detection contract, as numpy.

    Attributes:
        boxes: float32 ``[K, 4]`` xyxy in the pixels of the image given to the detector.
        scores: float32 ``[K]``.
        labels: int64 ``[K]`` 0-based class indices.
        masks: ``[K, H, W]`` instance masks (float in 0..1 or bool), or ``None``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, index: np.ndarray) -> Detections:
        """The detections at ``index`` (in that order)."""
        return Detections(self.boxes[index], self.scores[index], self.labels[index], None if self.masks is None else self.masks[index])

    def binary_masks(self) -> np.ndarray | None:
        """``masks`` as bool (soft masks thresholded at 0.5, torchvision's convention)."""
        if self.masks is None:
            return None
        return self.masks if self.masks.dtype == np.bool_ else self.masks > 0.5

    @staticmethod
    def empty(masks_shape: tuple[int, int] | None = None) -> Detections:
        masks = None if masks_shape is None else np.zeros((0, *masks_shape), dtype=bool)
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), masks)
