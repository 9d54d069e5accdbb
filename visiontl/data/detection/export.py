"""Writing records out: a YOLO copy (for Ultralytics) and COCO JSON (original category ids).

:func:`write_yolo_dataset` builds a writable YOLO dataset from records of any format: images
are symlinked (nothing is copied or written beside the user's data, which may be read-only),
labels are written as normalised ``class cx cy w h`` lines, or polygons for segmentation, and
a ``data.yaml`` with an absolute ``path:`` ties them together.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visiontl.data.detection.records import DetectionRecord


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # no symlinks (some Windows set-ups): fall back to a hard link or copy
        import shutil

        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def merge_polygons(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """One polygon tracing several: what YOLO-seg needs for an object seen in parts.

    Every other polygon hangs off the first at their closest pair of vertices: the outline
    walks the first polygon and, at each attachment vertex, crosses to the part, goes once
    round it and comes back the same way. The bridges are walked in both directions, so
    they add no area, and the outline's bounds are the union of the parts' bounds.
    """
    parts = [np.asarray(p, dtype=np.float32).reshape(-1, 2) for p in polygons if len(p) >= 3]
    if not parts:
        return np.zeros((0, 2), dtype=np.float32)
    first, rest = parts[0], parts[1:]
    attached: dict[int, list[np.ndarray]] = {}
    for part in rest:
        dist = ((first[:, None, :] - part[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(dist)), dist.shape)
        # The part, starting and ending at its attachment vertex.
        loop = np.concatenate([np.roll(part, -int(j), axis=0), part[int(j):int(j) + 1]])
        attached.setdefault(int(i), []).append(loop)
    out: list[np.ndarray] = []
    for i, vertex in enumerate(first):
        out.append(vertex[None])
        for loop in attached.get(i, []):
            out += [loop, vertex[None]]
    return np.concatenate(out)


def _object_polygon(record: DetectionRecord, i: int) -> np.ndarray:
    """One polygon per object, as YOLO-seg wants: its polygons merged, else the outlines of
    its RLE mask (with OpenCV when installed), else its box."""
    polys = record.polygons[i] if record.polygons is not None else []
    if polys:
        return merge_polygons(polys)
    rle = record.rles[i] if record.rles is not None else None
    if rle is not None:
        try:
            import cv2

            from visiontl.data.detection.masks import rle_to_mask

            contours, _ = cv2.findContours(rle_to_mask(rle, record.height, record.width), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            outline = merge_polygons([c.reshape(-1, 2) for c in contours])
            if len(outline) >= 3:
                return outline
        except ImportError:
            pass
    x1, y1, x2, y2 = record.boxes[i]
    return np.asarray([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float32)


def yolo_lines(record: DetectionRecord, masks: bool) -> list[str]:
    """The YOLO label lines of one record (crowd regions left out: YOLO has no crowd)."""
    size = np.asarray([record.width, record.height], dtype=np.float64)
    lines: list[str] = []
    for i in range(len(record)):
        if record.iscrowd[i]:
            continue
        cls = int(record.labels[i])
        if masks:
            poly = np.clip(_object_polygon(record, i) / size, 0.0, 1.0)
            lines.append(f"{cls} " + " ".join(f"{v:.6f}" for v in poly.reshape(-1)))
        else:
            x1, y1, x2, y2 = (float(v) for v in record.boxes[i])
            cx, cy = (x1 + x2) / 2 / size[0], (y1 + y2) / 2 / size[1]
            w, h = (x2 - x1) / size[0], (y2 - y1) / size[1]
            lines.append(f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def _write_split(records: Sequence[DetectionRecord], out_dir: Path, split: str, masks: bool) -> None:
    names: set[str] = set()
    for index, record in enumerate(records):
        name = record.path.name
        if name in names:  # same file name in two source folders: keep both
            name = f"{index:06d}_{name}"
        names.add(name)
        _link(record.path, out_dir / "images" / split / name)
        label = out_dir / "labels" / split / (Path(name).stem + ".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        lines = yolo_lines(record, masks)
        label.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")


def write_yolo_dataset(
    class_names: Sequence[str],
    train_records: Sequence[DetectionRecord],
    val_records: Sequence[DetectionRecord],
    out_dir: Path,
    masks: bool,
) -> Path:
    """Write a YOLO copy of the records under ``out_dir`` and return its ``data.yaml``.

    Args:
        class_names: class names in label order.
        train_records, val_records: the splits.
        out_dir: a writable folder (created; previous labels there are replaced).
        masks: write polygons (YOLO-seg) instead of boxes.

    Returns:
        The path of ``out_dir/data.yaml`` (``path:`` absolute, ``train: images/train``,
        ``val: images/val``).
    """
    import shutil

    import yaml

    out_dir = Path(out_dir).resolve()
    for sub in ("images", "labels"):
        if (out_dir / sub).exists():
            shutil.rmtree(out_dir / sub)
    _write_split(train_records, out_dir, "train", masks)
    _write_split(val_records, out_dir, "val", masks)
    data = {
        "path": str(out_dir),
        "train": "images/train",
        "val": "images/val",
        "names": {i: str(n) for i, n in enumerate(class_names)},
    }
    path = out_dir / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def coco_dict(
    class_names: Sequence[str],
    records: Sequence[DetectionRecord],
    category_ids: Sequence[int] | None = None,
    image_root: Path | None = None,
) -> dict[str, Any]:
    """COCO instances content for ``records``, with class ``i`` written as ``category_ids[i]``
    (default ``i + 1``): the way back from contiguous labels to a dataset's own ids."""
    ids = list(category_ids) if category_ids is not None else list(range(1, len(class_names) + 1))
    images, annotations = [], []
    for image_id, record in enumerate(records, start=1):
        file_name = str(record.path.relative_to(image_root)) if image_root else record.path.name
        images.append({"id": image_id, "file_name": file_name, "width": record.width, "height": record.height})
        for i in range(len(record)):
            x1, y1, x2, y2 = (float(v) for v in record.boxes[i])
            ann: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(ids[int(record.labels[i])]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": int(record.iscrowd[i]),
            }
            rle = record.rles[i] if record.rles is not None else None
            polys = record.polygons[i] if record.polygons is not None else []
            if rle is not None:
                ann["segmentation"] = rle
            elif polys:
                ann["segmentation"] = [np.asarray(p, dtype=np.float64).reshape(-1).round(2).tolist() for p in polys]
            annotations.append(ann)
    categories = [{"id": int(cid), "name": str(name)} for cid, name in zip(ids, class_names, strict=True)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco_json(
    class_names: Sequence[str],
    records: Sequence[DetectionRecord],
    out_path: Path,
    category_ids: Sequence[int] | None = None,
    image_root: Path | None = None,
) -> Path:
    """Write :func:`coco_dict` to ``out_path`` and return it."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(coco_dict(class_names, records, category_ids, image_root)), encoding="utf-8")
    return out_path
