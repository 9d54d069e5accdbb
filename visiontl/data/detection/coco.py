"""COCO instances JSON -> :class:`DetectionRecord` objects.

* ``categories`` may use any ids (COCO's own skip numbers): they are mapped to contiguous
  class indices ``0..C-1`` in id order (or in ``data.class_names`` order), and back with
  :class:`CategoryMap`.
* ``bbox`` is ``[x, y, w, h]``; ``segmentation`` is a list of polygons or an RLE (compressed
  or not); ``iscrowd`` is kept for evaluation.
* Images without annotations are kept as negatives; every bad annotation is reported at
  ``<json>:annotation <id>`` (``<json>:image <id>`` for images) and dropped or clipped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from visiontl.data.detection import records as R
from visiontl.data.detection.records import DetectionRecord, LabelProblems
from visiontl.errors import DataError
from visiontl.ids import suggest


@dataclass(frozen=True)
class CategoryMap:
    """COCO category ids <-> contiguous class indices.

    Attributes:
        ids: the COCO category id of each class index.
        names: the class names, in index order.

    Example:
        >>> m = CategoryMap(ids=(1, 3, 90), names=("person", "car", "toothbrush"))
        >>> m.to_label(90), m.to_category(1)
        (2, 3)
    """

    ids: tuple[int, ...]
    names: tuple[str, ...]
    _index: dict[int, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({cid: i for i, cid in enumerate(self.ids)})

    def to_label(self, category_id: int) -> int:
        """The class index of a COCO category id (``KeyError`` if not a class)."""
        return self._index[int(category_id)]

    def to_category(self, label: int) -> int:
        """The COCO category id of a class index."""
        return self.ids[int(label)]

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._index

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``DataInfo.extras["category_map"]``)."""
        return {"ids": list(self.ids), "names": list(self.names)}


@dataclass
class CocoData:
    """What :func:`read_coco` found in one annotation file."""

    class_names: list[str]
    category_map: CategoryMap
    records: list[DetectionRecord]
    problems: LabelProblems


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(
            f"COCO annotation file '{path}' does not exist.",
            fix="set data.train/data.val to COCO JSON files under data.root",
        )
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"COCO annotation file '{path}' is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            fix="repair the file (e.g. check it with: python -m json.tool FILE)",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("categories"), list):
        raise DataError(
            f"'{path}' is not a COCO instances file: it needs 'images' and 'categories' lists (and 'annotations').",
            fix="export the labels as COCO instances JSON, or use data.format: yolo for YOLO txt labels",
        )
    return data


def category_map(categories: Sequence[dict[str, Any]], path: Path, class_names: Sequence[str] | None = None) -> CategoryMap:
    """The contiguous class order of a file's categories.

    Without ``class_names`` classes are the categories in ascending id order; with them,
    exactly those categories in that order.

    Raises:
        DataError: duplicated category ids or names, a category without id/name, or a
            ``class_names`` entry that is no category (with did-you-mean).
    """
    by_id: dict[int, str] = {}
    for cat in categories:
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise DataError(f"'{path}': a category lacks 'id' or 'name': {cat!r}.", fix="give every category an id and a name")
        cid = int(cat["id"])
        if cid in by_id:
            raise DataError(f"'{path}': category id {cid} is defined twice.", fix="give every category its own id")
        by_id[cid] = str(cat["name"])
    names_seen = list(by_id.values())
    if len(set(names_seen)) != len(names_seen):
        dup = next(n for n in names_seen if names_seen.count(n) > 1)
        raise DataError(f"'{path}': two categories are named '{dup}'.", fix="give every category its own name")
    if not by_id:
        raise DataError(f"'{path}' defines no categories.", fix="add the object classes to 'categories'")
    if class_names:
        id_of = {name: cid for cid, name in by_id.items()}
        for name in class_names:
            if name not in id_of:
                close = suggest(name, id_of, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise DataError(
                    f"data.class_names names '{name}', which is not a category of '{path}'.{hint}",
                    fix=f"use category names of the file: {', '.join(sorted(id_of))}",
                )
        return CategoryMap(tuple(id_of[n] for n in class_names), tuple(class_names))
    ids = tuple(sorted(by_id))
    return CategoryMap(ids, tuple(by_id[i] for i in ids))


def _image_size(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """(width, height) from the header, or the reason it cannot be read."""
    from visiontl.data.images import probe_image

    problem = probe_image(path)
    if problem:
        return None, problem
    with Image.open(path) as img:
        return (int(img.size[0]), int(img.size[1])), None


def _polygons(seg: Any, where: str, problems: LabelProblems) -> tuple[list[np.ndarray], dict[str, Any] | None]:
    """Polygons (absolute pixels) or an RLE from a COCO ``segmentation`` value."""
    if seg is None or seg == []:
        return [], None
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            problems.add(where, R.malformed_annotation("an RLE segmentation needs 'counts' and 'size'; mask ignored"))
            return [], None
        return [], seg
    if not isinstance(seg, list):
        problems.add(where, R.malformed_annotation(f"segmentation of type {type(seg).__name__}; mask ignored"))
        return [], None
    polys: list[np.ndarray] = []
    for poly in seg:
        try:
            arr = np.asarray(poly, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            problems.add(where, R.malformed_annotation("a polygon holds non-numbers; that polygon ignored"))
            continue
        if arr.size < 6 or arr.size % 2:
            problems.add(where, R.malformed_annotation(f"a polygon with {arr.size} coordinates (needs an even number, at least 6); that polygon ignored"))
            continue
        polys.append(arr.reshape(-1, 2))
    return polys, None


def read_coco(
    json_path: Path,
    images_dir: Path | None = None,
    class_names: Sequence[str] | None = None,
) -> CocoData:
    """Read a COCO instances file.

    Args:
        json_path: the annotation file.
        images_dir: the folder ``file_name`` entries are relative to (default: the JSON's folder).
        class_names: the class order to use (a subset of the categories, by name).

    Returns:
        :class:`CocoData` with records in file-name order and every problem found.

    Raises:
        DataError: the file is missing, not JSON, not COCO instances, or its categories are
            inconsistent.
    """
    data = _load_json(json_path)
    images_dir = images_dir or json_path.parent
    cmap = category_map(data["categories"], json_path, class_names)
    all_cats = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    problems = LabelProblems()
    anns_by_image: dict[Any, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    image_ids = set()
    for img in data["images"]:
        if isinstance(img, dict) and "id" in img:
            if img["id"] in image_ids:
                raise DataError(f"'{json_path}': image id {img['id']} is listed twice.", fix="give every image its own id")
            image_ids.add(img["id"])
    for n, ann in enumerate(data.get("annotations") or []):
        ann_id = ann.get("id", f"#{n}") if isinstance(ann, dict) else f"#{n}"
        where = f"{json_path}:annotation {ann_id}"
        if not isinstance(ann, dict):
            problems.add(where, R.malformed_annotation(f"not an object ({type(ann).__name__})"))
            continue
        if ann.get("image_id") not in image_ids:
            problems.add(where, R.unknown_image_id(ann.get("image_id")))
            continue
        anns_by_image[ann["image_id"]].append((where, ann))

    records: list[DetectionRecord] = []
    for img in data["images"]:
        where_img = f"{json_path}:image {img.get('id') if isinstance(img, dict) else '?'}"
        if not isinstance(img, dict) or "file_name" not in img or "id" not in img:
            problems.add(where_img, R.malformed_annotation("an image entry needs 'id' and 'file_name'; image ignored"))
            continue
        anns = anns_by_image.get(img["id"], [])
        path = images_dir / str(img["file_name"])
        if not path.is_file():
            problems.add(str(path), R.image_file_missing(path, len(anns)))
            continue
        size, reason = _image_size(path)
        if size is None:
            problems.add(str(path), R.image_unreadable(str(reason)))
            continue
        declared = (int(img.get("width") or size[0]), int(img.get("height") or size[1]))
        if declared != size:
            problems.note(where_img, R.size_mismatch(declared, size), R.SIZE_MISMATCH)
        width, height = size
        boxes, labels, crowd, polys, rles = [], [], [], [], []
        for where, ann in anns:
            cid = ann.get("category_id")
            try:
                cid_int = int(cid)
            except (TypeError, ValueError):
                problems.add(where, R.unknown_category(cid, sorted(all_cats)))
                continue
            if cid_int not in all_cats:
                problems.add(where, R.unknown_category(cid, sorted(all_cats)))
                continue
            if cid_int not in cmap:
                problems.add(where, R.category_not_selected(all_cats[cid_int]))
                continue
            bbox = ann.get("bbox")
            try:
                x, y, w, h = (float(v) for v in bbox)  # type: ignore[union-attr]
            except (TypeError, ValueError):
                problems.add(where, R.malformed_annotation(f"bbox {bbox!r} is not [x, y, width, height]"))
                continue
            box = R.check_box((x, y, x + w, y + h), width, height, where, problems)
            if box is None:
                continue
            poly, rle = _polygons(ann.get("segmentation"), where, problems)
            boxes.append(box)
            labels.append(cmap.to_label(cid_int))
            crowd.append(1 if ann.get("iscrowd") else 0)
            polys.append(poly)
            rles.append(rle)
        records.append(
            DetectionRecord(
                path=path,
                width=width,
                height=height,
                boxes=np.stack(boxes) if boxes else R.empty_boxes(),
                labels=np.asarray(labels, dtype=np.int64),
                iscrowd=np.asarray(crowd, dtype=np.int64),
                polygons=polys,
                rles=rles if any(r is not None for r in rles) else None,
                image_id=int(img["id"]) if isinstance(img["id"], (int, float)) else len(records),
                source=str(json_path),
            )
        )
    records.sort(key=lambda r: str(r.path))
    return CocoData(list(cmap.names), cmap, records, problems)
