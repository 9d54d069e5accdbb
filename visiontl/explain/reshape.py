"""Turning a target layer's output into the ``[B, C, h, w]`` map the CAM methods weigh.

Convolutional stages give ``[B, C, h, w]`` already. Some families do not: torchvision's Swin
keeps channels last (``[B, h, w, C]``) and vision transformers give tokens (``[B, N, C]``,
possibly with class or register tokens in front of the ``h * w`` patch tokens). The layout is
read from one probe forward, by matching the output's dimensions against the input image's
aspect ratio, so no architecture is named here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Tokens a transformer may put before its patch tokens (class, distillation, registers).
MAX_PREFIX_TOKENS = 8


@dataclass(frozen=True)
class Layout:
    """How a feature tensor is laid out.

    Attributes:
        kind: ``nchw``, ``nhwc`` or ``tokens``.
        grid: ``(h, w)`` of the patch grid (tokens only).
        prefix: tokens before the patch tokens (tokens only).
    """

    kind: str
    grid: tuple[int, int] | None = None
    prefix: int = 0

    def describe(self) -> str:
        if self.kind == "tokens" and self.grid is not None:
            return f"tokens ({self.prefix} prefix, grid {self.grid[0]}x{self.grid[1]})"
        return self.kind


def _spatial(h: int, w: int, image: tuple[int, int]) -> bool:
    """Whether ``(h, w)`` can be a feature grid of an image of size ``image``: the image's
    aspect ratio within a cell and a half, or 5% (strided layers round, and detectors pad
    their input up to a multiple of the stride)."""
    ih, iw = image
    if h < 1 or w < 1:
        return False
    expected = h * iw / ih
    return abs(w - expected) <= max(1.5, 0.05 * w)


def _grid(tokens: int, image: tuple[int, int]) -> tuple[int, int] | None:
    """``(h, w)`` with ``h * w == tokens`` matching the image's aspect ratio, if any."""
    best: tuple[float, tuple[int, int]] | None = None
    for h in range(1, tokens + 1):
        if tokens % h:
            continue
        w = tokens // h
        if _spatial(h, w, image):
            err = abs(math.log((image[0] / h) / (image[1] / w)))
            if best is None or err < best[0]:
                best = (err, (h, w))
    return best[1] if best else None


def detect_layout(output: Any, image: tuple[int, int]) -> Layout:
    """The layout of ``output`` for an input image of ``image = (H, W)``.

    Channels-first wins when both readings fit (a ``[1, 7, 7, 7]`` map).

    Raises:
        ConfigError: the output is not a tensor, or has no recognisable spatial layout.
    """
    import torch

    if not isinstance(output, torch.Tensor):
        raise ConfigError(
            f"The target layer returns a {type(output).__name__}, not a feature-map tensor.",
            fix="pass --layer with a group or module whose output is a [B, C, H, W] tensor",
        )
    shape = tuple(int(s) for s in output.shape)
    if len(shape) == 4:
        if _spatial(shape[2], shape[3], image):
            return Layout("nchw")
        if _spatial(shape[1], shape[2], image):
            return Layout("nhwc")
    if len(shape) == 3:
        for prefix in range(0, MAX_PREFIX_TOKENS + 1):
            grid = _grid(shape[1] - prefix, image) if shape[1] > prefix else None
            if grid is not None:
                return Layout("tokens", grid, prefix)
    raise ConfigError(
        f"The target layer's output {list(shape)} has no spatial layout for an input of {list(image)}.",
        fix="pass --layer with a group or module whose output is a feature map",
    )


def reshape_transform(layout: Layout) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A function mapping the layer's output to ``[B, C, h, w]`` (``None`` when it is already)."""
    if layout.kind == "nchw":
        return None
    if layout.kind == "nhwc":
        return lambda t: t.permute(0, 3, 1, 2)
    assert layout.grid is not None
    h, w = layout.grid
    prefix = layout.prefix

    def tokens(t: torch.Tensor) -> torch.Tensor:
        patches = t[:, prefix:, :]
        return patches.reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)

    return tokens
