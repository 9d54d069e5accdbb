"""The PNG written for each explained image: the picture, the CAM over it, and a caption."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from visiontl.explain.cam import CamResult


def heatmap(cam: np.ndarray, picture: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``picture`` (float ``[h, w, 3]`` in 0..1) blended with the CAM in the ``jet`` colours,
    as uint8 ``[h, w, 3]``."""
    from matplotlib import colormaps

    colours = colormaps["jet"](np.clip(cam, 0.0, 1.0))[..., :3].astype(np.float32)
    blended = (1.0 - alpha) * picture + alpha * colours
    return (np.clip(blended, 0.0, 1.0) * 255).round().astype(np.uint8)


def caption(result: CamResult, energy: float | None = None) -> list[str]:
    """Caption lines: ``bees 0.93``, ``gradcam | stage3 (features.12)`` and, with a mask,
    ``CAM energy in mask 0.62``."""
    what = result.class_name or "all detections"
    score = f" {result.score:.2f}" if result.score is not None else ""
    lines = [f"{what}{score}", f"{result.method} | {result.layer}"]
    if energy is not None:
        lines.append(f"CAM energy in mask {energy:.2f}")
    return lines


#: Small pictures are enlarged to at least this many pixels on their short side.
MIN_SIDE = 224


def render(result: CamResult, energy: float | None = None) -> Image.Image:
    """The picture and its CAM overlay side by side under a caption; detections are boxed on
    the overlay; ``energy`` (share of CAM energy in the mask) is added to the caption."""
    import math

    from PIL import Image, ImageDraw

    picture = Image.fromarray((np.clip(result.display, 0.0, 1.0) * 255).round().astype(np.uint8))
    overlay = Image.fromarray(heatmap(result.cam, result.display))
    w, h = picture.size
    k = max(1, math.ceil(MIN_SIDE / max(1, min(w, h))))
    if k > 1:
        w, h = w * k, h * k
        picture = picture.resize((w, h), Image.Resampling.BILINEAR)
        overlay = overlay.resize((w, h), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(overlay)
    width = max(1, round(min(w, h) / 150))
    for x1, y1, x2, y2, name, score in result.boxes:
        draw.rectangle([x1 * k, y1 * k, x2 * k, y2 * k], outline=(255, 255, 255), width=width)
        draw.text((x1 * k + 2, y1 * k + 1), f"{name} {score:.2f}", fill=(255, 255, 255))
    lines = caption(result, energy)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = max(int(measure.textlength(line)) for line in lines) + 8
    bar = 12 * len(lines) + 6
    canvas = Image.new("RGB", (max(2 * w, text_width), h + bar), (0, 0, 0))
    canvas.paste(picture, (0, bar))
    canvas.paste(overlay, (w, bar))
    pen = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        pen.text((4, 3 + 12 * i), line, fill=(255, 255, 255))
    return canvas
