"""Semantic segmentation post-processing, as :mod:`visiontl.data.segmentation.inference` does it.

* Every forward pads its input (replicating the border) to a multiple of the model's size
  multiple, resizes logits that come back smaller to the padded size, and crops them back.
* ``resize`` inference: logits of the input made at the model's size, brought back to the
  image (the letterbox's content cropped first), bilinear.
* ``sliding`` inference: windows of the input size over the image at its own size, logits
  averaged where they overlap.
* The label map is the arg-max; each class's area is its share of the image's pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from visiontl.data.resize import content_size
from visiontl.deploy.imageops import bilinear, pad_edge

#: ``[B, 3, H, W]`` normalised input -> ``[B, C, h, w]`` logits (the graph's ``out``).
Forward = Callable[[np.ndarray], np.ndarray]

#: Inputs are padded to a multiple of this unless the manifest says otherwise.
SIZE_MULTIPLE = 32


def padded_logits(forward: Forward, x: np.ndarray, multiple: int = SIZE_MULTIPLE) -> np.ndarray:
    """``forward(x)`` with ``x`` ``[B, 3, h, w]`` padded to a multiple of ``multiple``, the
    logits cropped back to ``h x w``."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph, pw = (-h) % multiple, (-w) % multiple
    out = forward(pad_edge(x, ph, pw))
    if tuple(out.shape[-2:]) != (h + ph, w + pw):
        out = bilinear(out, (h + ph, w + pw))
    return out[..., :h, :w]


def back_to_image(logits: np.ndarray, size: tuple[int, int], mode: str = "stretch") -> np.ndarray:
    """Logits ``[C, h, w]`` of an input made from an image of ``size = (H, W)`` by ``mode``,
    at the image's size: a letterbox's content (top left) cropped, then resized."""
    if mode == "letterbox":
        ch, cw = content_size(int(size[0]), int(size[1]), (int(logits.shape[-2]), int(logits.shape[-1])), mode)
        logits = logits[..., :ch, :cw]
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = bilinear(logits, size)
    return logits


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows covering ``length`` with at least ``overlap`` of a window shared.

    Example:
        >>> window_starts(100, 40, 0.25)
        [0, 30, 60]
    """
    if length <= window:
        return [0]
    stride = max(1, int(window * (1.0 - overlap)))
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def sliding_logits(forward: Forward, image: np.ndarray, window: tuple[int, int], overlap: float = 0.25,
                   multiple: int = SIZE_MULTIPLE, batch_size: int = 4) -> np.ndarray:
    """Logits ``[C, H, W]`` of a normalised image ``[3, H, W]`` by sliding windows."""
    _, h, w = image.shape
    wh, ww = window
    padded = pad_edge(image, max(0, wh - h), max(0, ww - w))
    H, W = padded.shape[-2:]
    corners = [(y, x) for y in window_starts(H, wh, overlap) for x in window_starts(W, ww, overlap)]
    total: np.ndarray | None = None
    count = np.zeros((1, H, W), dtype=np.float32)
    for start in range(0, len(corners), batch_size):
        chunk = corners[start : start + batch_size]
        crops = np.stack([padded[:, y : y + wh, x : x + ww] for y, x in chunk])
        out = padded_logits(forward, crops, multiple)
        if total is None:
            total = np.zeros((out.shape[1], H, W), dtype=np.float32)
        for (y, x), piece in zip(chunk, out, strict=True):
            total[:, y : y + wh, x : x + ww] += piece
            count[:, y : y + wh, x : x + ww] += 1
    assert total is not None
    return (total / count)[:, :h, :w]


def label_map(logits: np.ndarray) -> np.ndarray:
    """Class index per pixel (``int64 [H, W]``) of ``[C, H, W]`` logits."""
    return np.asarray(logits).argmax(0).astype(np.int64)


def class_areas(labels: np.ndarray, class_names: Sequence[str]) -> list[tuple[str, float]]:
    """``(class, share of the pixels)`` of the classes present, largest first."""
    fractions = np.bincount(labels.reshape(-1), minlength=len(class_names)) / labels.size
    order = [int(i) for i in np.argsort(-fractions, kind="stable") if fractions[i] > 0]
    return [(class_names[i], float(fractions[i])) for i in order]


def pixel_cross_entropy(logits: np.ndarray, labels: np.ndarray, ignore_index: int, chunk: int = 1 << 16) -> tuple[float, int]:
    """Summed cross-entropy over the labelled pixels of one image, and their count (in chunks
    of pixels, so that many classes on a large image do not need a large buffer)."""
    valid = labels != ignore_index
    flat = np.asarray(logits, dtype=np.float32)[:, valid]
    targets = labels[valid].astype(np.int64)
    total = 0.0
    for start in range(0, flat.shape[1], chunk):
        z = flat[:, start : start + chunk].astype(np.float64)
        z = z - z.max(axis=0, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=0))
        total -= float((z[targets[start : start + chunk], np.arange(z.shape[1])] - log_norm).sum())
    return total, int(targets.size)
