"""Joint transforms for an image and its mask.

torchvision's ``transforms.v2`` applies each geometric transform with the *same* random
parameters to every tensor of a sample and resizes a ``tv_tensors.Mask`` with nearest
interpolation, while photometric transforms (colour jitter, grayscale) touch the image only.
Pixels that a rotation brings in from outside the image are labelled ``ignore_index``.

Presets (``augmentation.preset``):

==========  ==================================================================================
none        resize image and mask to the input size (deterministic)
light       RandomResizedCrop (scale 0.5-1), horizontal flip
standard    RandomResizedCrop (0.25-1), flip, ColorJitter 0.2
strong      RandomResizedCrop (0.1-1), flip, rotation up to 15 degrees, ColorJitter 0.3 with hue
            0.05, RandomGrayscale 0.1
auto        ``standard`` under 1,000 training images, else ``light``
==========  ==================================================================================

The input size may be non-square (``data.image_size: [H, W]``): crops take aspect ratios
centred on ``W / H`` (:func:`visiontl.data.resize.crop_ratio`), so a crop is not stretched on
average. ``data.resize: letterbox`` first fits the image inside ``H x W`` (aspect ratio kept)
and pads it at the bottom and right with the mean colour, the mask with ``ignore_index``;
crops then cut that canvas. ``stretch`` (and ``auto``) resize straight to ``H x W``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from visiontl.contracts import Preprocessing

PRESETS = ("none", "light", "standard", "strong")

#: A joint transform: (PIL RGB image, int64 label array) -> (image tensor [3,H,W], mask [H,W]).
JointTransform = Callable[[Any, np.ndarray], tuple[Any, Any]]


def auto_preset(num_train_images: int) -> str:
    """The preset ``auto`` picks: every image holds many labelled pixels, so segmentation needs
    less augmentation than classification at the same image count."""
    return "standard" if num_train_images < 1000 else "light"


def _interp(name: str) -> Any:
    from torchvision.transforms import InterpolationMode

    return {"bicubic": InterpolationMode.BICUBIC, "nearest": InterpolationMode.NEAREST}.get(name, InterpolationMode.BILINEAR)


def _finish(pre: Preprocessing) -> list[Any]:
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    # Only the image becomes float and is normalised; the mask keeps its integer labels.
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(list(pre.mean), list(pre.std))]


def resize_mode(mode: str) -> str:
    """``data.resize`` for segmentation: ``auto`` is ``stretch``."""
    return "stretch" if mode == "auto" else mode


def _to_size(pre: Preprocessing, mode: str, interp: Any, ignore_index: int) -> list[Any]:
    """The deterministic resize of image (and mask) to the input size under ``mode``."""
    from torchvision.transforms import v2

    from visiontl.data.resize import FitResize, letterbox_fill

    if resize_mode(mode) == "letterbox":
        return [FitResize(pre.input_size, pad=True, interpolation=interp, fill=letterbox_fill(pre.mean), mask_fill=ignore_index)]
    return [v2.Resize(pre.input_size, interpolation=interp, antialias=True)]


def _geometric(preset: str, pre: Preprocessing, interp: Any, ignore_index: int, mode: str = "stretch") -> list[Any]:
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from visiontl.data.resize import crop_ratio

    size = pre.input_size
    if preset == "none":
        return _to_size(pre, mode, interp, ignore_index)
    scale = {"light": (0.5, 1.0), "standard": (0.25, 1.0), "strong": (0.1, 1.0)}[preset]
    # A letterbox canvas first (aspect kept, padding ignored), then crops of it.
    ops = _to_size(pre, mode, interp, ignore_index) if resize_mode(mode) == "letterbox" else []
    ops += [v2.RandomResizedCrop(size, scale=scale, ratio=crop_ratio(size), interpolation=interp, antialias=True), v2.RandomHorizontalFlip()]
    if preset == "strong":
        ops.append(v2.RandomRotation(15, interpolation=interp, fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}))
    return ops


def _photometric(preset: str) -> list[Any]:
    from torchvision.transforms import v2

    if preset == "standard":
        return [v2.ColorJitter(0.2, 0.2, 0.2)]
    if preset == "strong":
        return [v2.ColorJitter(0.3, 0.3, 0.3, 0.05), v2.RandomGrayscale(0.1)]
    return []


class _Joint:
    """Image and mask through one ``v2.Compose`` (a class, not a closure: data-loader workers
    started with ``spawn`` must be able to pickle it)."""

    def __init__(self, ops: list[Any]) -> None:
        from torchvision.transforms import v2

        self.pipeline = v2.Compose(ops)

    def __call__(self, image: Any, labels: np.ndarray) -> tuple[Any, Any]:
        import torch
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        img = v2.functional.to_image(image)
        mask = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)))
        out_img, out_mask = self.pipeline(img, mask)
        return out_img.as_subclass(torch.Tensor), out_mask.as_subclass(torch.Tensor)


class _ImageOnly:
    """The image through the transforms; the mask untouched (at its own size)."""

    def __init__(self, ops: list[Any]) -> None:
        from torchvision.transforms import v2

        self.pipeline = v2.Compose(ops)

    def image(self, image: Any) -> Any:
        import torch
        from torchvision.transforms import v2

        return self.pipeline(v2.functional.to_image(image)).as_subclass(torch.Tensor)

    def __call__(self, image: Any, labels: np.ndarray) -> tuple[Any, Any]:
        import torch

        return self.image(image), torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))


def train_transform(pre: Preprocessing, preset: str, ignore_index: int = 255, mode: str = "stretch") -> JointTransform:
    """The training transform of a preset (see the module docstring).

    Args:
        mode: ``data.resize`` (``auto``/``stretch`` or ``letterbox``).

    Raises:
        ValueError: unknown preset.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}")
    interp = _interp(pre.interpolation)
    return _Joint([*_geometric(preset, pre, interp, ignore_index, mode), *_photometric(preset), *_finish(pre)])


def _eval_ops(pre: Preprocessing, resize: bool, mode: str = "stretch") -> list[Any]:
    ops = _to_size(pre, mode, _interp(pre.interpolation), 0) if resize else []
    return [*ops, *_finish(pre)]


def eval_transform(pre: Preprocessing, resize: bool = True, mode: str = "stretch") -> JointTransform:
    """Validation: the image brought to the input size (``resize``, by ``mode``: stretched or
    letterboxed) or kept at its own size (sliding-window inference); the mask always at its
    own size, so metrics count the original pixels."""
    return _ImageOnly(_eval_ops(pre, resize, mode))


def image_transform(pre: Preprocessing, resize: bool = True, mode: str = "stretch") -> Callable[[Any], Any]:
    """The image half of :func:`eval_transform` (for prediction without a mask)."""
    return _ImageOnly(_eval_ops(pre, resize, mode)).image
