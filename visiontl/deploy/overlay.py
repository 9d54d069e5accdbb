"""Predictions drawn onto the image with Pillow (what ``visiontl predict --out`` writes).

Segmentation uses visiontl's own overlay (:func:`visiontl.data.segmentation.overlay.overlay`,
numpy and Pillow); detection draws what the PyTorch path draws with torchvision's utilities:
masks tinted in the class colour, then boxes with ``class score`` captions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from visiontl.deploy.prediction import Prediction

#: Class colours of detection drawings (as the detection task's ``PALETTE``).
PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
)


def draw(image: Image.Image, prediction: Prediction, class_names: Sequence[str]) -> Image.Image | None:
    """``image`` with ``prediction`` drawn on it, or ``None`` for classification (nothing to draw)."""
    if prediction.label_map is not None:
        from visiontl.data.segmentation.overlay import overlay

        return overlay(image, prediction.label_map, class_names)
    if prediction.score != "score":
        return None
    names = list(class_names)
    colours = [PALETTE[names.index(c) % len(PALETTE)] if c in names else PALETTE[0] for c in prediction.labels]
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    if prediction.masks is not None:
        for mask, colour in zip(prediction.masks, colours, strict=True):
            rgb[mask] = 0.55 * rgb[mask] + 0.45 * np.asarray(colour, dtype=np.float32)
    out = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")
    pen = ImageDraw.Draw(out)
    width = max(2, round(min(out.size) / 200))
    for box, name, score, colour in zip(prediction.boxes, prediction.labels, prediction.scores, colours, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        pen.text((x1 + width, y1 + width), f"{name} {score:.2f}", fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0))
    return out
