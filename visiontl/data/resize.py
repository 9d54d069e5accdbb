"""How an image reaches the recipe's input size (``data.image_size``, ``data.resize``).

One geometry for every task, so that training, evaluation, prediction and the way back to
the original pixels agree:

* ``stretch``: exactly ``H x W``; the aspect ratio changes when the image's differs.
* ``letterbox``: scaled by ``min(H / h, W / w)`` (the whole image fits, aspect ratio kept),
  then padded at the bottom and right to ``H x W``. Padding only at the bottom and right keeps
  the content at the origin, so going back is a crop ``[:h', :w']`` and a resize.
* ``fit``: the letterbox scaling without the padding (detection's ``auto``: detectors take
  images of any size).

The transforms here take the samples of ``torchvision.transforms.v2`` (an image, an
``(image, mask)`` pair, a detection dict of tv_tensors) and move masks and boxes with the
image; they are classes, not closures, so spawned data-loader workers can pickle them.
"""

from __future__ import annotations

from typing import Any

#: The modes of ``data.resize`` other than ``auto`` (which each task maps to one of these).
MODES = ("stretch", "letterbox", "fit")


def fit_size(height: int, width: int, size: tuple[int, int]) -> tuple[int, int]:
    """The (height, width) an image takes when scaled to fit inside ``size`` (H, W) with its
    aspect ratio kept (at least one pixel a side).

    Example:
        >>> fit_size(360, 480, (256, 256)), fit_size(480, 360, (360, 480))
        ((192, 256), (360, 270))
    """
    scale = min(size[0] / height, size[1] / width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def content_size(height: int, width: int, size: tuple[int, int], mode: str) -> tuple[int, int]:
    """Where an image of ``height x width`` lies in the model's input after ``mode``: all of
    ``size`` for ``stretch``, its fitted size (at the top left) for ``letterbox`` and ``fit``.

    Example:
        >>> content_size(360, 480, (256, 256), "stretch"), content_size(360, 480, (256, 256), "letterbox")
        ((256, 256), (192, 256))
    """
    if mode == "stretch":
        return size
    return fit_size(height, width, size)


def crop_ratio(size: tuple[int, int], spread: float = 4 / 3) -> tuple[float, float]:
    """``RandomResizedCrop``'s aspect-ratio range (width / height of the crop) centred on the
    output's own ratio, so that a crop is not stretched on average: ``(3/4, 4/3)`` for a
    square, ``(1.0, 1.78)`` for 360 x 480.

    Example:
        >>> crop_ratio((224, 224)), tuple(round(r, 2) for r in crop_ratio((360, 480)))
        ((0.75, 1.3333333333333333), (1.0, 1.78))
    """
    aspect = size[1] / size[0]
    return aspect / spread, aspect * spread


def _first_image_size(sample: Any) -> tuple[int, int]:
    """(height, width) of the image in a v2 sample: the first entry that is neither a mask nor
    boxes (an ``(image, mask)`` tuple, a dict with ``image``, or an image alone)."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as F

    if isinstance(sample, dict):
        items: list[Any] = [sample["image"]] if "image" in sample else list(sample.values())
    elif isinstance(sample, (tuple, list)):
        items = list(sample)
    else:
        items = [sample]
    for item in items:
        if not isinstance(item, (tv_tensors.Mask, tv_tensors.BoundingBoxes)):
            h, w = F.get_size(item)
            return int(h), int(w)
    raise TypeError("the sample holds no image")


class FitResize:
    """Scale a sample to fit inside ``size`` keeping its aspect ratio and, with ``pad``, pad it
    at the bottom and right to exactly ``size`` (a letterbox).

    Args:
        size: (height, width) of the model's input.
        pad: pad to ``size`` (letterbox) or keep the fitted size (fit).
        interpolation: of the image (masks are always resized with nearest neighbours).
        fill: the image's padding value, per channel in the image's own range (uint8 for
            images before ``ToDtype``).
        mask_fill: the padding label of masks (``ignore_index`` for semantic masks).
    """

    def __init__(self, size: tuple[int, int], pad: bool = True, interpolation: Any = None,
                 fill: float | tuple[float, ...] = 0, mask_fill: int = 0) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.pad = pad
        self.interpolation = interpolation
        self.fill = fill
        self.mask_fill = mask_fill

    def __call__(self, *inputs: Any) -> Any:
        from torchvision import tv_tensors
        from torchvision.transforms import InterpolationMode, v2

        sample = inputs if len(inputs) > 1 else inputs[0]
        height, width = _first_image_size(sample)
        fitted = fit_size(height, width, self.size)
        interpolation = self.interpolation or InterpolationMode.BILINEAR
        if fitted != (height, width):
            sample = v2.Resize(fitted, interpolation=interpolation, antialias=True)(sample)
        if self.pad and fitted != self.size:
            bottom, right = self.size[0] - fitted[0], self.size[1] - fitted[1]
            fill = {tv_tensors.Image: self.fill, tv_tensors.Mask: self.mask_fill, "others": 0}
            sample = v2.Pad([0, 0, right, bottom], fill=fill)(sample)  # left, top, right, bottom
        return sample


def letterbox_fill(mean: tuple[float, float, float]) -> tuple[int, int, int]:
    """The uint8 colour that normalises to 0: padding then looks like no signal to the model.

    Example:
        >>> letterbox_fill((0.485, 0.456, 0.406))
        (124, 116, 104)
    """
    return (round(mean[0] * 255), round(mean[1] * 255), round(mean[2] * 255))
