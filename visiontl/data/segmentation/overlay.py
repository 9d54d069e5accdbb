"""Class colours and coloured overlays of predicted masks (``visiontl predict``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

#: Classes with these names are left unpainted in overlays.
BACKGROUND_NAMES = frozenset({"background", "bg", "_background_", "unlabeled", "unlabelled"})


def palette(n: int) -> np.ndarray:
    """``n`` distinct RGB colours, the PASCAL VOC colour map (class 0 black, 1 dark red, ...).

    Example:
        >>> palette(3).tolist()
        [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    colours = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours[i] = (r, g, b)
    return colours


def overlay(image: Image.Image, labels: np.ndarray, class_names: Sequence[str], alpha: float = 0.5) -> Image.Image:
    """``image`` with each class's pixels tinted in its colour and a legend of the classes shown.

    Args:
        image: the RGB image.
        labels: predicted class indices ``[H, W]`` at the image's size.
        class_names: names in label order; ``background`` (and similar) stays unpainted.
        alpha: opacity of the tint.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    # Colour i+1 of the VOC map for class i: no class is drawn in black.
    pal = palette(len(class_names) + 1)[1:].astype(np.float32)
    paint = np.ones(len(class_names), dtype=bool)
    for i, name in enumerate(class_names):
        if name.strip().lower() in BACKGROUND_NAMES:
            paint[i] = False
    labels = np.asarray(labels)
    mask = paint[labels]
    out = rgb.copy()
    out[mask] = (1 - alpha) * rgb[mask] + alpha * pal[labels[mask]]
    result = Image.fromarray(out.clip(0, 255).astype(np.uint8), "RGB")
    shown = [i for i in np.unique(labels).tolist() if paint[i]]
    draw = ImageDraw.Draw(result)
    y = 4
    for i in shown[:20]:
        colour = tuple(int(v) for v in pal[i])
        draw.rectangle([4, y, 16, y + 12], fill=colour, outline=(255, 255, 255))
        draw.text((20, y), class_names[i], fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0))
        y += 16
    return result
