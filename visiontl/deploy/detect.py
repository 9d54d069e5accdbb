"""Detection post-processing shared by every detector family, and the whole-graph family.

* :class:`GraphDetector`: a per-image detection graph (torchvision detectors, see
  :mod:`visiontl.export.detection`) already decodes boxes, applies NMS and pastes masks: its
  outputs are final, in the input's pixels. Nothing is left to do but read them.
* :func:`to_image`: a detection ``predict`` whose recipe brought the image to
  ``data.image_size`` (``stretch``/``letterbox``) maps boxes and masks back to the image.
* :func:`above`: the detections ``predict`` lists: at least the score threshold, best first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visiontl.deploy.backends import Session
from visiontl.deploy.detections import Detections
from visiontl.deploy.imageops import bilinear


class GraphDetector:
    """A per-image detection graph: ``[1, 3, H, W]`` RGB in 0..1 in, ``boxes, scores, labels
    (, masks)`` out.

    Args:
        session: the engine.
        output_names: the graph's outputs in order (``masks`` last for instance segmentation).
    """

    def __init__(self, session: Session, output_names: Sequence[str]) -> None:
        self.session = session
        self.names = tuple(output_names)

    def __call__(self, image: np.ndarray, keep: float | None = None) -> Detections:
        """Detections of one ``[3, H, W]`` 0..1 image in its pixels (``keep`` is unused: the
        graph pastes every mask itself)."""
        named = dict(zip(self.names, self.session.run(image[None].astype(np.float32)), strict=True))
        masks = None
        if "masks" in named:
            masks = np.asarray(named["masks"], dtype=np.float32)
            masks = masks[:, 0] if masks.ndim == 4 else masks
        return Detections(np.asarray(named["boxes"], dtype=np.float32).reshape(-1, 4),
                          np.asarray(named["scores"], dtype=np.float32).reshape(-1),
                          np.asarray(named["labels"]).astype(np.int64).reshape(-1), masks)


def to_image(dets: Detections, size: tuple[int, int], content: tuple[int, int]) -> Detections:
    """Detections of an input whose top-left ``content`` (h, w) holds the image of
    ``size = (H, W)``, in the image's pixels (boxes scaled; masks cropped, resized bilinear)."""
    height, width = size
    ch, cw = content
    boxes = dets.boxes * np.asarray([width / cw, height / ch] * 2, dtype=np.float32)
    masks = dets.masks
    if masks is not None and len(masks):
        masks = bilinear(masks[:, :ch, :cw].astype(np.float32), (height, width))
    elif masks is not None:
        masks = np.zeros((0, height, width), dtype=np.float32)
    return Detections(boxes.astype(np.float32), dets.scores, dets.labels, masks)


def above(dets: Detections, threshold: float) -> Detections:
    """The detections scoring at least ``threshold``, best first."""
    order = [int(i) for i in np.argsort(-dets.scores, kind="stable") if float(dets.scores[i]) >= threshold]
    return dets.select(np.asarray(order, dtype=np.int64))
