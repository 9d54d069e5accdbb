"""Detection transforms (torchvision.transforms.v2 on tv_tensors): images, boxes and masks
move together, so a flip, crop or scale keeps every object where it is in the picture.

Images stay in 0..1, unnormalised: detection models normalise inside (torchvision's
``GeneralizedRCNNTransform``, Ultralytics' own preprocessing).

Presets (``augmentation.preset``):

* ``none``: nothing but the optional resize (deterministic);
* ``light``: horizontal flip;
* ``standard``: flip, photometric distortion (brightness, contrast, saturation, hue);
* ``strong``: ``standard`` plus a random affine (scale 0.75-1.25, shift up to 10 %);
* ``auto``: ``standard`` under 500 objects in the rarest class, else ``light`` (scale
  augmentation is already done inside most detectors).

Objects an augmentation pushes out of the picture (or squeezes below a pixel) are removed
with their masks by ``SanitizeBoundingBoxes``: that is augmentation, not a label problem.

Sizes (``data.image_size``, ``data.resize``; see :mod:`visiontl.data.resize`): ``auto``
fits the image inside ``H x W`` keeping its aspect ratio (one number: the longer side
becomes it), unpadded, since detectors take any size; ``letterbox`` pads that to exactly
``H x W`` (bottom and right, so boxes keep their coordinates); ``stretch`` resizes to
``H x W``.
"""

from __future__ import annotations

from typing import Any

PRESETS = ("none", "light", "standard", "strong")


def resolve_preset(preset: str, min_objects_per_class: int) -> str:
    """The preset ``auto`` stands for, given the rarest class's training objects."""
    if preset != "auto":
        return preset
    return "standard" if min_objects_per_class < 500 else "light"


def _labels_getter(inputs: Any) -> Any:
    # Labels and iscrowd are per-object tensors: sanitising must drop them with their boxes
    # (masks of shape [N, H, W] are dropped by the transform itself).
    sample = inputs[0] if isinstance(inputs, tuple) else inputs
    return sample["labels"], sample["iscrowd"]


def resize_mode(mode: str) -> str:
    """``data.resize`` for detection: ``auto`` is ``fit`` (aspect kept, no padding)."""
    return "fit" if mode == "auto" else mode


def size_step(image_size: int | tuple[int, int] | list[int], mode: str = "auto") -> Any:
    """The resize of a sample to ``image_size`` under ``data.resize`` (see the module docstring)."""
    from torchvision.transforms import v2

    from visiontl.config.schema import image_hw
    from visiontl.data.resize import FitResize

    hw = image_hw(image_size)
    assert hw is not None
    mode = resize_mode(mode)
    if mode == "stretch":
        return v2.Resize(hw, antialias=True)
    if mode == "fit" and hw[0] == hw[1]:
        return v2.Resize(size=None, max_size=hw[0], antialias=True)  # the longer side: as before
    return FitResize(hw, pad=mode == "letterbox")


def detection_transform(preset: str, image_size: int | tuple[int, int] | None = None, train: bool = True, mode: str = "auto") -> Any:
    """The transform of one sample dict ``{"image", "boxes", "labels", "iscrowd", "masks"?}``.

    Args:
        preset: an augmentation preset (see the module docstring); ignored when ``train`` is False.
        image_size: the input size, one number or (height, width); ``None`` keeps the
            original size.
        train: training transform (augmentation, sanitising) or evaluation transform.
        mode: ``data.resize``: ``auto`` (fit inside, aspect kept), ``letterbox`` or ``stretch``.

    Returns:
        A ``v2.Compose``: tv_tensors in, tv_tensors out, the image as float32 in 0..1.
    """
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    steps: list[Any] = []
    if image_size is not None:
        steps.append(size_step(image_size, mode))
    if train:
        if preset in ("light", "standard", "strong"):
            steps.append(v2.RandomHorizontalFlip(0.5))
        if preset in ("standard", "strong"):
            steps.append(v2.RandomPhotometricDistort(p=0.5))
        if preset == "strong":
            steps.append(v2.RandomAffine(degrees=0.0, translate=(0.1, 0.1), scale=(0.75, 1.25)))
        steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_labels_getter)]
    else:
        steps.append(v2.ClampBoundingBoxes())
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    return v2.Compose(steps)
