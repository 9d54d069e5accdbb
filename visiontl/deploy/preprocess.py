"""The model's input from a PIL image, as visiontl's evaluation transforms make it.

One function per kind of input; each mirrors the torchvision pipeline named in its docstring,
with :mod:`visiontl.deploy.imageops` standing in for torchvision, and the geometry (fitted
sizes, letterbox colour) taken from :mod:`visiontl.data.resize` itself, so training, the
PyTorch predictor and the runtime share one definition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from visiontl.data.resize import content_size, fit_size, letterbox_fill
from visiontl.deploy import imageops


@dataclass(frozen=True)
class Preprocessing:
    """The manifest's ``preprocessing`` (``visiontl.contracts.Preprocessing`` as data)."""

    input_size: tuple[int, int]
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    crop_pct: float = 0.875

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> Preprocessing:
        size = data.get("input_size") or (224, 224)
        return cls((int(size[0]), int(size[1])), tuple(data.get("mean", cls.mean)), tuple(data.get("std", cls.std)),  # type: ignore[arg-type]
                   str(data.get("interpolation", "bilinear")), float(data.get("crop_pct", 0.875)))


def size_hw(size: Any) -> tuple[int, int] | None:
    """A recipe's ``data.image_size`` (one number, ``[H, W]`` or ``None``) as (H, W)."""
    if size is None:
        return None
    if isinstance(size, (int, float)):
        return (int(size), int(size))
    return (int(size[0]), int(size[1]))


def _letterboxed(image: Image.Image, size: tuple[int, int], interpolation: str, fill: tuple[int, int, int]) -> Image.Image:
    """``FitResize(size, pad=True, fill=fill)`` on a uint8 image: fitted inside ``size``
    (aspect kept), padded at the bottom and right."""
    fitted = fit_size(image.height, image.width, size)
    resized = imageops.pil_resize(image, fitted, interpolation)
    if fitted == tuple(size):
        return resized
    canvas = Image.new("RGB", (size[1], size[0]), fill)
    canvas.paste(resized, (0, 0))
    return canvas


def classifier_input(image: Image.Image, pre: Preprocessing, mode: str = "auto") -> np.ndarray:
    """``visiontl.data.transforms.eval_transform(pre, mode)``: ``[1, 3, H, W]`` float32.

    * ``auto``: resize to ``size / crop_pct`` (the shorter side for a square size), centre-crop;
    * ``stretch``: resize to exactly the input size;
    * ``letterbox``: fit inside it, pad the bottom and right with the mean colour.
    """
    h, w = pre.input_size
    if mode == "stretch":
        image = imageops.pil_resize(image, (h, w), pre.interpolation)
    elif mode == "letterbox":
        image = _letterboxed(image, (h, w), pre.interpolation, letterbox_fill(pre.mean))
    else:
        scale = 1.0 / pre.crop_pct if pre.crop_pct > 0 else 1.0
        if h != w:
            target = (math.floor(h * scale), math.floor(w * scale))
        else:
            # torchvision's Resize(int): the shorter side to the size, the longer in proportion
            short_side = math.floor(h * scale)
            ih, iw = image.height, image.width
            short, long = (iw, ih) if iw <= ih else (ih, iw)
            new_long = int(short_side * long / short)
            target = (new_long, short_side) if iw <= ih else (short_side, new_long)
        image = imageops.center_crop(imageops.pil_resize(image, target, pre.interpolation), (h, w))
    return imageops.normalise(image, pre.mean, pre.std)[None]


def segmenter_input(image: Image.Image, pre: Preprocessing, resize: bool = True, mode: str = "stretch") -> np.ndarray:
    """``visiontl.data.segmentation.transforms.image_transform(pre, resize, mode)``:
    ``[3, H, W]`` float32, brought to the input size (stretched or letterboxed with the mean
    colour) or, for sliding windows, at the image's own size."""
    if resize:
        if mode == "letterbox":
            image = _letterboxed(image, pre.input_size, pre.interpolation, letterbox_fill(pre.mean))
        else:
            image = imageops.pil_resize(image, pre.input_size, pre.interpolation)
    return imageops.normalise(image, pre.mean, pre.std)


def sized_detection_input(x: np.ndarray, image_size: tuple[int, int], mode: str) -> tuple[np.ndarray, tuple[int, int]]:
    """A detection ``predict``'s resize of a ``[3, H, W]`` 0..1 image when the recipe sets
    ``data.image_size`` with ``data.resize: stretch`` or ``letterbox``
    (``visiontl.data.detection.transforms.size_step``).

    Returns:
        The resized image and where the image's content lies in it (its top-left (h, w)).
    """
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if mode == "stretch":
        return imageops.resize_float(x, image_size), image_size
    fitted = fit_size(height, width, image_size)
    resized = imageops.resize_float(x, fitted)
    if mode == "letterbox" and fitted != tuple(image_size):
        canvas = np.zeros((x.shape[0], *image_size), dtype=np.float32)
        canvas[:, : fitted[0], : fitted[1]] = resized
        resized = canvas
    return resized, content_size(height, width, (int(resized.shape[-2]), int(resized.shape[-1])), mode)
