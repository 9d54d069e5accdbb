"""Small generated detection datasets for the detection tests (COCO JSON and YOLO).

Each image is a grey background with coloured rectangles (the objects), so boxes, masks
and pixels can be checked against each other after any transform.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

COLOURS = ((220, 40, 40), (40, 200, 40), (40, 40, 220))


def draw_image(path: Path, size: tuple[int, int], objects: list[tuple[int, tuple[int, int, int, int]]]) -> None:
    """Write a PNG/JPEG of ``size`` (w, h) with filled rectangles ``(class, (x1, y1, x2, y2))``."""
    w, h = size
    arr = np.full((h, w, 3), 128, dtype=np.uint8)
    for cls, (x1, y1, x2, y2) in objects:
        arr[y1:y2, x1:x2] = COLOURS[cls % len(COLOURS)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def shapes_objects(i: int, w: int, h: int) -> list[tuple[int, tuple[int, int, int, int]]]:
    """One or two non-overlapping rectangles for image ``i`` (deterministic)."""
    rng = np.random.default_rng(i)
    out = []
    for k in range(1 + i % 2):
        bw, bh = int(rng.integers(w // 5, w // 3)), int(rng.integers(h // 5, h // 3))
        x1 = int(rng.integers(0, w // 2 - bw)) + k * (w // 2)
        y1 = int(rng.integers(0, h - bh))
        out.append(((i + k) % 2, (x1, y1, x1 + bw, y1 + bh)))
    return out


def make_coco(root: Path, n: int = 8, size: tuple[int, int] = (96, 64), category_ids: tuple[int, int] = (3, 90)) -> Path:
    """``root/images/img_XX.png`` and ``root/annotations.json`` with polygon segmentations and
    non-contiguous category ids; returns the JSON path."""
    w, h = size
    images, annotations = [], []
    for i in range(n):
        name = f"img_{i:02d}.png"
        objects = shapes_objects(i, w, h)
        draw_image(root / "images" / name, size, objects)
        images.append({"id": 100 + i, "file_name": name, "width": w, "height": h})
        for cls, (x1, y1, x2, y2) in objects:
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": 100 + i,
                "category_id": category_ids[cls],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
                "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]],
            })
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": category_ids[1], "name": "green"}, {"id": category_ids[0], "name": "red"}],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def make_yolo(root: Path, n_train: int = 6, n_val: int = 3, size: tuple[int, int] = (96, 64), seg: bool = False) -> Path:
    """A YOLO dataset under ``root/data`` with its yaml in ``root/config/data.yaml`` and a
    relative ``path: ../data`` (relative to the yaml's folder); returns the yaml path."""
    w, h = size
    for split, count, offset in (("train", n_train, 0), ("val", n_val, 50)):
        for i in range(count):
            objects = shapes_objects(offset + i, w, h)
            stem = f"{split}_{i:02d}"
            draw_image(root / "data" / "images" / split / f"{stem}.png", size, objects)
            lines = []
            for cls, (x1, y1, x2, y2) in objects:
                if seg:
                    poly = [x1 / w, y1 / h, x2 / w, y1 / h, x2 / w, y2 / h, x1 / w, y2 / h]
                    lines.append(f"{cls} " + " ".join(f"{v:.6f}" for v in poly))
                else:
                    lines.append(f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
            label = root / "data" / "labels" / split / f"{stem}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("\n".join(lines) + "\n")
    yaml_path = root / "config" / "data.yaml"
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    yaml_path.write_text("path: ../data\ntrain: images/train\nval: images/val\nnames:\n  0: red\n  1: green\n")
    return yaml_path

