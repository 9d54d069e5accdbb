"""Preprocessing resolved from the model, and augmentation presets."""

from __future__ import annotations

import math
from typing import Any

from visiontl.contracts import Preprocessing

PRESETS = ("none", "light", "standard", "strong")


def auto_preset(min_images_per_class: int) -> str:
    """The augmentation preset ``auto`` picks from the smallest class's training images.

    Less data, stronger augmentation: under 500 images per class ``strong``, under 5,000
    ``standard``, otherwise ``light`` (large datasets regularise themselves).
    """
    if min_images_per_class < 500:
        return "strong"
    if min_images_per_class < 5000:
        return "standard"
    return "light"


def _interpolation(name: str) -> Any:
    from torchvision.transforms import InterpolationMode

    return {
        "bilinear": InterpolationMode.BILINEAR,
        "bicubic": InterpolationMode.BICUBIC,
        "nearest": InterpolationMode.NEAREST,
    }.get(name, InterpolationMode.BILINEAR)


def _normalise(pre: Preprocessing) -> list[Any]:
    import torch
    from torchvision.transforms import v2

    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(pre.mean), list(pre.std))]


def eval_transform(pre: Preprocessing, mode: str = "auto") -> Any:
    """The deterministic evaluation transform under ``data.resize``:

    * ``auto``: resize to ``size / crop_pct`` (the shorter side, for a square size), centre-crop
      ``size``, normalise (the model's own evaluation convention);
    * ``stretch``: resize to exactly ``size``, normalise (nothing cropped);
    * ``letterbox``: fit inside ``size`` keeping the aspect ratio, pad the bottom and right with
      the mean colour, normalise (nothing cropped).
    """
    from torchvision.transforms import v2

    from visiontl.data.resize import FitResize, letterbox_fill

    h, w = pre.input_size
    interp = _interpolation(pre.interpolation)
    if mode == "stretch":
        return v2.Compose([v2.ToImage(), v2.Resize((h, w), interpolation=interp, antialias=True), *_normalise(pre)])
    if mode == "letterbox":
        return v2.Compose([v2.ToImage(), FitResize((h, w), pad=True, interpolation=interp, fill=letterbox_fill(pre.mean)), *_normalise(pre)])
    scale = 1.0 / pre.crop_pct if pre.crop_pct > 0 else 1.0
    resize = (math.floor(h * scale), math.floor(w * scale)) if h != w else math.floor(h * scale)
    return v2.Compose([v2.Resize(resize, interpolation=interp, antialias=True), v2.CenterCrop((h, w)), *_normalise(pre)])


def train_transform(pre: Preprocessing, preset: str, mode: str = "auto") -> Any:
    """Training transform for a preset.

    * ``none``: the eval transform (deterministic; allows feature caching);
    * ``light``: RandomResizedCrop (scale 0.5-1) and horizontal flip;
    * ``standard``: RandomResizedCrop (0.25-1), flip, ColorJitter 0.2;
    * ``strong``: RandomResizedCrop (0.08-1), flip, TrivialAugmentWide, ColorJitter 0.3,
      RandomErasing 0.25.

    Crops take aspect ratios centred on the input size's own (``W / H``), so a non-square
    input does not stretch them; with ``mode`` ``letterbox`` they cut the letterboxed image.
    """
    from torchvision.transforms import v2

    from visiontl.data.resize import FitResize, crop_ratio, letterbox_fill

    if preset == "none":
        return eval_transform(pre, mode)
    size = pre.input_size
    interp = _interpolation(pre.interpolation)
    scales = {"light": (0.5, 1.0), "standard": (0.25, 1.0), "strong": (0.08, 1.0)}
    if preset not in scales:
        raise ValueError(f"unknown augmentation preset {preset!r}")
    ops: list[Any] = []
    if mode == "letterbox":
        ops += [v2.ToImage(), FitResize(size, pad=True, interpolation=interp, fill=letterbox_fill(pre.mean))]
    ops += [v2.RandomResizedCrop(size, scale=scales[preset], ratio=crop_ratio(size), interpolation=interp, antialias=True), v2.RandomHorizontalFlip()]
    if preset == "standard":
        ops.append(v2.ColorJitter(0.2, 0.2, 0.2))
    if preset == "strong":
        ops += [v2.TrivialAugmentWide(interpolation=interp), v2.ColorJitter(0.3, 0.3, 0.3)]
        return v2.Compose([*ops, *_normalise(pre), v2.RandomErasing(p=0.25)])
    return v2.Compose([*ops, *_normalise(pre)])
