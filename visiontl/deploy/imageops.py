"""Image arithmetic in numpy and Pillow that reproduces what torchvision/torch do in visiontl.

* :func:`pil_resize`: what ``transforms.v2.Resize`` does to a PIL image or a uint8 tensor
  (torchvision hands PIL images to Pillow, and its uint8 resize follows Pillow's filters).
* :func:`resize_float`: ``F.interpolate(x, size, mode="bilinear", antialias=True)`` on float
  images, through Pillow's float (``"F"``) mode one channel at a time: torch's antialiased
  kernel is a port of Pillow's, so the two agree to float rounding.
* :func:`bilinear`: ``F.interpolate(x, size, mode="bilinear", align_corners=False)`` without
  antialiasing, ported exactly (source index ``(i + 0.5) * in / out - 0.5`` clamped at 0):
  the resize visiontl uses on logits and masks, and the one YOLO's letterbox uses to enlarge.
* :func:`pad_edge`: ``F.pad(..., mode="replicate")`` at the bottom and right.

Arrays are channels-first float32 (``[C, H, W]``) unless a function says otherwise.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: ``Preprocessing.interpolation`` -> Pillow's filter (torchvision's mapping; bilinear otherwise).
PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC, "nearest": Image.Resampling.NEAREST}


def pil_filter(name: str) -> Image.Resampling:
    """Pillow's filter for an interpolation name (``bilinear`` when unknown, as torchvision)."""
    return PIL_FILTERS.get(name, Image.Resampling.BILINEAR)


def pil_resize(image: Image.Image, size: tuple[int, int], interpolation: str = "bilinear") -> Image.Image:
    """``image`` resized to ``size = (H, W)`` (unchanged when already that size, as torchvision)."""
    h, w = int(size[0]), int(size[1])
    if (image.height, image.width) == (h, w):
        return image
    return image.resize((w, h), resample=pil_filter(interpolation))


def to_unit(image: Image.Image) -> np.ndarray:
    """An RGB PIL image as float32 ``[3, H, W]`` in 0..1 (``to_dtype(pil_to_tensor(...), scale=True)``)."""
    return np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)


def normalise(image: Image.Image | np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``ToImage, ToDtype(float32, scale=True), Normalize(mean, std)``: ``[3, H, W]`` float32.

    Args:
        image: a PIL RGB image, or a uint8 ``[H, W, 3]`` array.
    """
    arr = np.asarray(image, dtype=np.uint8) if isinstance(image, Image.Image) else np.asarray(image)
    x = arr.astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    return ((x - m) / s).astype(np.float32)


def resize_float(x: np.ndarray, size: tuple[int, int], interpolation: str = "bilinear") -> np.ndarray:
    """``[C, H, W]`` float32 resized to ``size`` with Pillow's (antialiased) filter per channel."""
    h, w = int(size[0]), int(size[1])
    if tuple(x.shape[-2:]) == (h, w):
        return x.astype(np.float32, copy=False)
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), mode="F").resize((w, h), resample=pil_filter(interpolation)))
                for c in x]
    return np.stack(channels).astype(np.float32)


def _taps(out_len: int, in_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's ``upsample_bilinear2d`` source indices and weights along one axis."""
    if out_len == in_len:
        idx = np.arange(out_len)
        return idx, idx, np.zeros(out_len, dtype=np.float32)
    scale = np.float32(in_len / out_len)
    src = np.maximum(scale * (np.arange(out_len, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), np.float32(0.0))
    i0 = src.astype(np.int64)
    i1 = np.where(i0 < in_len - 1, i0 + 1, i0)
    lam = np.clip(src - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)
    return i0, i1, lam


def bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[..., H, W]`` resized to ``size`` like torch's bilinear ``interpolate`` with
    ``align_corners=False`` and no antialiasing (float32)."""
    h, w = int(size[0]), int(size[1])
    x = np.asarray(x, dtype=np.float32)
    if tuple(x.shape[-2:]) == (h, w):
        return x
    y0, y1, ly = _taps(h, x.shape[-2])
    x0, x1, lx = _taps(w, x.shape[-1])
    cols = x[..., x0] * (np.float32(1.0) - lx) + x[..., x1] * lx
    return (cols[..., y0, :] * (np.float32(1.0) - ly)[:, None] + cols[..., y1, :] * ly[:, None]).astype(np.float32)


def pad_edge(x: np.ndarray, bottom: int, right: int) -> np.ndarray:
    """``[..., H, W]`` padded at the bottom and right by repeating the border (torch's ``replicate``)."""
    if not bottom and not right:
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(0, int(bottom)), (0, int(right))]
    return np.pad(x, widths, mode="edge")


def center_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """torchvision's ``CenterCrop`` of a PIL image: padded with black first when smaller."""
    ch, cw = int(size[0]), int(size[1])
    h, w = image.height, image.width
    if ch > h or cw > w:
        left, top = ((cw - w) // 2 if cw > w else 0), ((ch - h) // 2 if ch > h else 0)
        canvas = Image.new(image.mode, (w + left + ((cw - w + 1) // 2 if cw > w else 0), h + top + ((ch - h + 1) // 2 if ch > h else 0)))
        canvas.paste(image, (left, top))
        image, h, w = canvas, canvas.height, canvas.width
        if (h, w) == (ch, cw):
            return image
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return image.crop((left, top, left + cw, top + ch))
