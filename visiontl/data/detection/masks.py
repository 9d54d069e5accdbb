"""Instance masks from polygons and RLEs (pycocotools), at the image's own size."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from visiontl.data.detection.records import DetectionRecord


@contextmanager
def quiet_pycocotools() -> Iterator[None]:
    """pycocotools (2.0.x) warns about NumPy 2's ``copy`` keyword on every decode: noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pycocotools")
        yield


def rle_to_mask(rle: dict[str, Any], height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE (compressed string or uncompressed count list) to uint8 ``[H, W]``.

    An RLE whose ``size`` differs from the image (a COCO file annotated at another
    resolution) is resized with nearest-neighbour sampling.
    """
    from pycocotools import mask as mask_utils

    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        encoded = mask_utils.frPyObjects(rle, h, w)
    else:
        encoded = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    with quiet_pycocotools():
        mask = np.asarray(mask_utils.decode(encoded), dtype=np.uint8)
    if (h, w) != (height, width):
        rows = (np.arange(height) * h // max(1, height)).clip(0, h - 1)
        cols = (np.arange(width) * w // max(1, width)).clip(0, w - 1)
        mask = mask[rows][:, cols]
    return mask


def polygons_to_mask(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise absolute-pixel polygons (each ``[K, 2]``) into one uint8 ``[H, W]`` mask."""
    from pycocotools import mask as mask_utils

    flat = [np.asarray(p, dtype=np.float64).reshape(-1).tolist() for p in polygons if len(p) >= 3]
    if not flat:
        return np.zeros((height, width), dtype=np.uint8)
    rles = mask_utils.frPyObjects(flat, height, width)
    with quiet_pycocotools():
        return np.asarray(mask_utils.decode(mask_utils.merge(rles)), dtype=np.uint8)


def box_to_mask(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """A filled rectangle: the mask of an object that has no segmentation."""
    mask = np.zeros((height, width), dtype=np.uint8)
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    mask[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = 1
    return mask


def record_masks(record: DetectionRecord) -> np.ndarray:
    """uint8 ``[N, H, W]`` masks of every object of ``record``.

    Each object's mask comes from its RLE, else its polygons, else its box (reported while
    inspecting the dataset, see :func:`visiontl.data.detection.records.no_segmentation`).
    """
    h, w = record.height, record.width
    out = np.zeros((len(record), h, w), dtype=np.uint8)
    for i in range(len(record)):
        rle = record.rles[i] if record.rles is not None else None
        polys = record.polygons[i] if record.polygons is not None else []
        if rle is not None:
            out[i] = rle_to_mask(rle, h, w)
        elif polys:
            out[i] = polygons_to_mask(polys, h, w)
        else:
            out[i] = box_to_mask(record.boxes[i], h, w)
    return out


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """A JSON-serialisable compressed RLE of a binary ``[H, W]`` mask."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
