"""Decoding mask files into class labels.

A mask file is read without any colour conversion: class-index PNGs (8/16/32-bit grayscale)
give their stored values, palette PNGs give their palette *indices* (never the colours), and
RGB masks are either colour-coded (``data.mask_colors``: the colour of each class) or gray
images saved as RGB. Stored values then go through the value map (``data.value_map``, or the
identity over ``0..C-1``); values that map to no class and are not ``ignore_index`` are
*unknown*: they are returned for the caller to report, never silently turned into a class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

#: LUT marker for stored values that map to nothing (internal; never leaves this module).
_UNKNOWN = np.iinfo(np.int64).min


class MaskError(Exception):
    """A mask file that cannot be used; ``str()`` is the reason (for the skipped-files report)."""


@dataclass(frozen=True)
class DecodedMask:
    """A decoded mask.

    Attributes:
        labels: ``int64 [H, W]`` class indices, ``ignore_index`` for ignored pixels (and for
            unknown values, which callers must not train on: see ``unknown``).
        unknown: stored values (or RGB colours) that map to no class, sorted.
    """

    labels: np.ndarray
    unknown: list[int | tuple[int, int, int]] = field(default_factory=list)


def read_mask_values(path: Path, colors: bool = False) -> np.ndarray:
    """The stored values of a mask file: ``[H, W]`` integers, or ``[H, W, 3]`` for colour masks.

    Args:
        path: the mask file.
        colors: RGB masks are colour-coded (keep the 3 channels).

    Raises:
        MaskError: unreadable, or an RGB mask with differing channels while ``colors`` is off.
    """
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode == "P":
                arr = np.asarray(img)  # palette indices, not colours
            elif mode in ("RGB", "RGBA", "RGBX"):
                arr = np.asarray(img.convert("RGB")) if mode != "RGB" else np.asarray(img)
            elif mode in ("LA", "PA"):
                arr = np.asarray(img.getchannel(0))
            elif mode == "1":
                arr = np.asarray(img, dtype=np.uint8)
            elif mode in ("L", "I", "I;16", "I;16B", "I;16L", "I;16N"):
                arr = np.asarray(img)
            else:
                raise MaskError(f"mask mode {mode} is not a label image (expected L, P, I;16, I or RGB)")
    except FileNotFoundError:
        raise MaskError("mask file not found") from None
    except UnidentifiedImageError:
        raise MaskError("mask is not a recognised image format") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise MaskError(f"corrupt mask: {exc}") from None
    if arr.ndim == 3:
        if colors:
            return arr
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise MaskError("RGB mask with colours, but data.mask_colors is not set (give the colour of each class)")
        arr = arr[..., 0]
    return arr.astype(np.int64, copy=False)


def _lut_decode(values: np.ndarray, mapping: Mapping[int, int]) -> tuple[np.ndarray, list[int]]:
    if values.size and 0 <= int(values.min()) and int(values.max()) < 1 << 16:
        # 8/16-bit masks: one table lookup per pixel, linear time.
        top = int(values.max())
        lut = np.full(top + 1, _UNKNOWN, dtype=np.int64)
        for stored, label in mapping.items():
            if 0 <= stored <= top:
                lut[stored] = label
        present = np.bincount(values.reshape(-1), minlength=top + 1) > 0
        return lut[values], [int(v) for v in np.flatnonzero(present & (lut == _UNKNOWN))]
    uniq, inverse = np.unique(values, return_inverse=True)
    mapped = np.array([mapping.get(int(v), _UNKNOWN) for v in uniq], dtype=np.int64)
    unknown = [int(v) for v, m in zip(uniq, mapped, strict=True) if m == _UNKNOWN]
    return mapped[inverse.reshape(values.shape)], unknown


@dataclass(frozen=True)
class MaskDecoder:
    """Stored mask values -> class indices ``0..C-1`` or ``ignore_index``.

    Attributes:
        num_classes: ``C``.
        ignore_index: label of ignored pixels; a stored value equal to it is ignored.
        value_map: stored value -> class index (or ``ignore_index``); ``None`` is the identity
            over ``0..C-1``.
        colors: RGB colour of each class, in class order, for colour-coded masks.
    """

    num_classes: int
    ignore_index: int = 255
    value_map: Mapping[int, int] | None = None
    colors: Sequence[tuple[int, int, int]] | None = None

    def mapping(self) -> dict[int, int]:
        """The full stored-value map (identity, or the value map, plus ignore_index)."""
        table = dict(self.value_map) if self.value_map is not None else {i: i for i in range(self.num_classes)}
        table.setdefault(self.ignore_index, self.ignore_index)
        return table

    def decode_values(self, values: np.ndarray) -> DecodedMask:
        """Decode stored values (``[H, W]``, or ``[H, W, 3]`` colours) to labels."""
        if values.ndim == 3:
            if not self.colors:
                raise MaskError("colour mask but no data.mask_colors")
            codes = (values[..., 0].astype(np.int64) << 16) | (values[..., 1].astype(np.int64) << 8) | values[..., 2].astype(np.int64)
            table = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(self.colors)}
            labels, unknown_codes = _lut_decode(codes, table)
            unknown: list[int | tuple[int, int, int]] = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in unknown_codes]
        else:
            labels, unknown_values = _lut_decode(values, self.mapping())
            unknown = list(unknown_values)
        if unknown:
            labels = np.where(labels == _UNKNOWN, self.ignore_index, labels)
        return DecodedMask(labels, unknown)

    def decode(self, path: Path) -> DecodedMask:
        """Read and decode a mask file.

        Raises:
            MaskError: the file cannot be read as a mask.
        """
        return self.decode_values(read_mask_values(path, colors=bool(self.colors)))


def describe_unknown(unknown: Sequence[int | tuple[int, int, int]], decoder: MaskDecoder) -> str:
    """The skipped-file reason for a mask with unknown values."""
    shown = ", ".join(str(v) for v in unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
    if decoder.colors:
        return f"mask colours {shown} are not in data.mask_colors"
    where = "data.value_map" if decoder.value_map is not None else f"the classes 0..{decoder.num_classes - 1}"
    return f"mask values {shown} are not in {where} and not ignore_index {decoder.ignore_index}"
