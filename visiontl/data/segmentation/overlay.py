"""Class colours and coloured overlays of predicted masks (``visiontl predict``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

#: Classes with these names are left unpainted in overlays.
BACKGROUND_NAMES = frozenset({"background", "bg", "_background_", "unlabeled", "unlabelled"})


#: Twenty colours chosen to stay apart from each other (Sasha Trubetskoy's "20 distinct
#: colours"; the detection overlays use its first ten), ordered so that neighbours differ most.
DISTINCT = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
    (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195),
    (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128), (255, 225, 25),
)


def palette(n: int) -> np.ndarray:
    """``n`` RGB colours, one per class index, that keep neighbouring classes apart.

    Classes with neighbouring indices are often neighbours in the picture too (road and
    sidewalk, car and truck): the first 20 come from :data:`DISTINCT`, the rest step the hue
    by the golden angle (about 222 degrees) and alternate saturation and brightness, so any two
    consecutive colours differ clearly. None is black or near-black (an overlay tints with it).
    (The PASCAL VOC map used before gave classes 7 and 8 grey and near-black.)

    Example:
        >>> palette(3).tolist()
        [[230, 25, 75], [60, 180, 75], [0, 130, 200]]
    """
    import colorsys

    colours = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        if i < len(DISTINCT):
            colours[i] = DISTINCT[i]
            continue
        hue = (i * 0.618034) % 1.0
        saturation = 0.9 if i % 2 == 0 else 0.6
        value = 1.0 if (i // 2) % 2 == 0 else 0.8
        colours[i] = [round(c * 255) for c in colorsys.hsv_to_rgb(hue, saturation, value)]
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
    pal = palette(len(class_names)).astype(np.float32)
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
