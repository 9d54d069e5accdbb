"""Running a segmentation model on images of any size.

* Every forward pads its input (replicating the border) to a multiple of
  :data:`SIZE_MULTIPLE`, because encoder-decoder models need sides divisible by their output
  stride, and crops the logits back; outputs smaller than the input are resized first.
* ``resize`` inference resizes the image to the model's input size (stretched, or
  letterboxed with ``data.resize: letterbox``), predicts, and brings the logits back to the
  image (the letterbox's content cropped, then a bilinear resize).
* ``sliding`` inference slides a window of the input size over the image at its own
  resolution, with ``overlap`` (a fraction of the window) between neighbours, and averages the
  logits where windows overlap; images smaller than the window are padded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

#: Inputs are padded to a multiple of this (the largest output stride of the encoders served).
SIZE_MULTIPLE = 32


def _crop(out: torch.Tensor, size: tuple[int, int], padded: tuple[int, int]) -> torch.Tensor:
    import torch.nn.functional as F

    if tuple(out.shape[-2:]) != padded:
        out = F.interpolate(out, size=padded, mode="bilinear", align_corners=False)
    return out[..., : size[0], : size[1]]


def padded_forward(model: nn.Module, x: torch.Tensor) -> Any:
    """``model(x)`` with ``x`` padded to a multiple of :data:`SIZE_MULTIPLE`, outputs cropped
    back to ``x``'s size. Keeps the output's form: a tensor, or a mapping such as
    ``{"out": ..., "aux": ...}``; a ``(masks, labels)`` tuple gives its masks."""
    import torch.nn.functional as F

    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph, pw = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    out = model(xp)
    if isinstance(out, (tuple, list)):
        out = out[0]
    padded = (h + ph, w + pw)
    if isinstance(out, Mapping):
        return {k: _crop(v, (h, w), padded) if v is not None else None for k, v in out.items()}
    return _crop(out, (h, w), padded)


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits ``[B, C, H, W]`` at ``x``'s size (the ``out`` entry of mapping outputs)."""
    out = padded_forward(model, x)
    return out["out"] if isinstance(out, Mapping) else out


def back_to_image(out: torch.Tensor, size: tuple[int, int], mode: str = "stretch") -> torch.Tensor:
    """Logits ``[C, h, w]`` of a model input made from an image of ``size = (H, W)`` by
    ``mode`` (``stretch`` or ``letterbox``), at the image's own size: the letterbox's content
    (top left, see :mod:`visiontl.data.resize`) is cropped first, then resized (bilinear)."""
    import torch.nn.functional as F

    from visiontl.data.resize import content_size

    if mode == "letterbox":
        ch, cw = content_size(int(size[0]), int(size[1]), (int(out.shape[-2]), int(out.shape[-1])), mode)
        out = out[..., :ch, :cw]
    if tuple(out.shape[-2:]) != tuple(size):
        out = F.interpolate(out.unsqueeze(0), size=tuple(size), mode="bilinear", align_corners=False)[0]
    return out


def resize_logits(model: nn.Module, image: torch.Tensor, size: tuple[int, int], mode: str = "stretch") -> torch.Tensor:
    """Logits ``[C, H, W]`` for an image ``[3, h, w]`` already brought to the input size by
    ``mode`` (stretched or letterboxed), back at the original ``size = (H, W)``."""
    return back_to_image(logits(model, image.unsqueeze(0))[0], size, mode)


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows of ``window`` pixels covering ``length`` pixels, neighbours
    overlapping by at least ``overlap`` of a window; the last window ends at the border.

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


def sliding_logits(
    model: nn.Module,
    image: torch.Tensor,
    window: tuple[int, int],
    overlap: float = 0.25,
    batch_size: int = 4,
) -> torch.Tensor:
    """Logits ``[C, H, W]`` of an image ``[3, H, W]`` at its own size by sliding windows.

    Args:
        model: an eval-mode segmentation model.
        image: the normalised image.
        window: (height, width) of a window (the model's input size).
        overlap: fraction of a window shared by neighbours (``eval.window_overlap``).
        batch_size: windows per forward.
    """
    import torch
    import torch.nn.functional as F

    _, h, w = image.shape
    wh, ww = window
    ph, pw = max(0, wh - h), max(0, ww - w)
    padded = F.pad(image.unsqueeze(0), (0, pw, 0, ph), mode="replicate")[0] if ph or pw else image
    H, W = padded.shape[-2:]
    boxes = [(y, x) for y in window_starts(H, wh, overlap) for x in window_starts(W, ww, overlap)]
    total: torch.Tensor | None = None
    count = torch.zeros((1, H, W), dtype=torch.float32, device=image.device)
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start : start + batch_size]
        crops = torch.stack([padded[:, y : y + wh, x : x + ww] for y, x in chunk])
        out = logits(model, crops).float()
        if total is None:
            total = torch.zeros((out.shape[1], H, W), dtype=torch.float32, device=image.device)
        for (y, x), piece in zip(chunk, out, strict=True):
            total[:, y : y + wh, x : x + ww] += piece
            count[:, y : y + wh, x : x + ww] += 1
    assert total is not None
    return (total / count)[:, :h, :w]
