"""YOLO labels (one ``.txt`` per image) and their data yaml -> :class:`DetectionRecord` objects.

* The data yaml's ``path:`` is resolved against **the yaml's own folder** when relative (not
  against Ultralytics' datasets folder); ``train``/``val`` are image folders, ``.txt`` lists of
  images, or lists of either, relative to ``path``; ``names`` is a list or a ``{index: name}`` map.
* Labels live where Ultralytics looks for them: the image path with its last ``images``
  folder replaced by ``labels`` and the extension by ``.txt``.
* A line is ``class cx cy w h`` (normalised box) or ``class x1 y1 x2 y2 x3 y3 ...``
  (normalised polygon, YOLO-seg); a polygon line also gives its bounding box.
* Problems are reported at ``<label file>:<line>``; images without a label file are kept
  as background images (a kept note, not skipped); label files without an image are reported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visiontl.data.detection import records as R
from visiontl.data.detection.records import DetectionRecord, LabelProblems
from visiontl.data.images import is_image_file, probe_image
from visiontl.errors import DataError


@dataclass
class YoloData:
    """What :func:`read_yolo` found: class names, records per split named in the yaml."""

    class_names: list[str]
    root: Path
    splits: dict[str, list[DetectionRecord]] = field(default_factory=dict)
    problems: LabelProblems = field(default_factory=LabelProblems)


def load_data_yaml(yaml_path: Path) -> tuple[dict[str, Any], Path, list[str]]:
    """Read a YOLO data yaml: its content, its resolved ``path`` and its class names.

    Raises:
        DataError: the file is missing or not a mapping, ``names`` is missing or not
            ``0..N-1``, or ``nc`` disagrees with ``names``.
    """
    import yaml

    if not yaml_path.is_file():
        raise DataError(f"YOLO data yaml '{yaml_path}' does not exist.", fix="set data.yaml to the data yaml's path under data.root")
    try:
        content = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(f"YOLO data yaml '{yaml_path}' is not valid YAML: {str(exc).splitlines()[0]}", fix="repair the file") from None
    if not isinstance(content, dict):
        raise DataError(f"YOLO data yaml '{yaml_path}' is not a mapping of keys (path, train, val, names).", fix="see https://docs.ultralytics.com/datasets/detect/")
    names_raw = content.get("names")
    if isinstance(names_raw, dict):
        keys = sorted(int(k) for k in names_raw)
        if keys != list(range(len(keys))):
            raise DataError(f"'{yaml_path}': names must be numbered 0..{len(keys) - 1} without gaps; found {keys[:10]}.", fix="renumber the classes from 0")
        names = [str(names_raw[k]) if k in names_raw else str(names_raw[str(k)]) for k in keys]
    elif isinstance(names_raw, list):
        names = [str(n) for n in names_raw]
    else:
        raise DataError(f"'{yaml_path}' has no 'names' list or map.", fix="add names: {0: first_class, 1: second_class, ...}")
    if "nc" in content and int(content["nc"]) != len(names):
        raise DataError(f"'{yaml_path}': nc is {content['nc']} but names lists {len(names)} classes.", fix="make nc match names, or remove nc")
    base = Path(os.path.expanduser(str(content.get("path") or ".")))
    # A relative path means "relative to this yaml", which is what users write; Ultralytics
    # would resolve it against its own datasets folder instead.
    root = base if base.is_absolute() else (yaml_path.parent / base)
    return content, root.resolve(), names


def label_path(image: Path) -> Path:
    """Where YOLO keeps the labels of ``image`` (the last ``images`` folder -> ``labels``)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _split_images(entry: Any, root: Path, yaml_path: Path, split: str) -> tuple[list[Path], list[Path]]:
    """(images, image folders) of a yaml split entry: folders, image-list files, or lists."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    folders: list[Path] = []
    for item in entries:
        p = Path(os.path.expanduser(str(item)))
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            folders.append(p)
            images += sorted(q for q in p.rglob("*") if q.is_file() and is_image_file(q))
        elif p.is_file() and p.suffix == ".txt":
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line:
                    q = Path(line)
                    images.append(q if q.is_absolute() else (p.parent / q).resolve())
        else:
            raise DataError(
                f"'{yaml_path}': {split} entry '{item}' is neither an image folder nor an image-list .txt (looked for {p}).",
                fix=f"fix '{split}:' in the yaml (relative to its path: {root})",
            )
    return images, folders


def _parse_line(line: str) -> tuple[int, np.ndarray, np.ndarray | None] | None:
    """(class id, normalised xyxy box, normalised polygon or None), or None if malformed."""
    tokens = line.split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        return None
    if len(values) < 5 or not float(values[0]).is_integer() or not np.all(np.isfinite(values)):
        return None
    cls = int(values[0])
    coords = np.asarray(values[1:], dtype=np.float64)
    if len(coords) == 4:
        cx, cy, w, h = coords
        return cls, np.asarray([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]), None
    if len(coords) >= 6 and len(coords) % 2 == 0:
        poly = coords.reshape(-1, 2)
        return cls, np.concatenate([poly.min(0), poly.max(0)]), poly
    return None


def read_label_file(
    path: Path, width: int, height: int, num_classes: int, problems: LabelProblems
) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]]]:
    """Boxes (absolute xyxy), labels and polygons (absolute; ``[]`` for box lines) of one file."""
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    polygons: list[list[np.ndarray]] = []
    scale = np.asarray([width, height], dtype=np.float64)
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        parsed = _parse_line(line)
        if parsed is None:
            problems.add(where, R.malformed_yolo_line(line))
            continue
        cls, box, poly = parsed
        if not 0 <= cls < num_classes:
            problems.add(where, R.class_out_of_range(cls, num_classes))
            continue
        checked = R.check_box(box * np.tile(scale, 2), width, height, where, problems)
        if checked is None:
            continue
        boxes.append(checked)
        labels.append(cls)
        polygons.append([(poly * scale).astype(np.float32)] if poly is not None else [])
    return (
        np.stack(boxes) if boxes else R.empty_boxes(),
        np.asarray(labels, dtype=np.int64),
        polygons,
    )


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        return int(img.size[0]), int(img.size[1])


def read_split(images: Sequence[Path], folders: Sequence[Path], names: Sequence[str], problems: LabelProblems) -> list[DetectionRecord]:
    """Records of one split's images; label files without an image are reported too."""
    records: list[DetectionRecord] = []
    for index, image in enumerate(images):
        label = label_path(image)
        problem = probe_image(image)
        if problem:
            problems.add(str(image), R.image_unreadable(problem))
            continue
        width, height = _image_size(image)
        if label.is_file():
            boxes, labels, polygons = read_label_file(label, width, height, len(names), problems)
        else:
            problems.note(str(image), R.image_without_label(label), R.BACKGROUND)
            boxes, labels, polygons = R.empty_boxes(), np.zeros(0, dtype=np.int64), []
        records.append(
            DetectionRecord(
                path=image,
                width=width,
                height=height,
                boxes=boxes,
                labels=labels,
                iscrowd=np.zeros(len(labels), dtype=np.int64),
                polygons=polygons,
                image_id=index,
                source=str(label) if label.is_file() else "",
            )
        )
    stems = {label_path(i) for i in images}
    for folder in folders:
        label_dir = label_path(folder / "x.jpg").parent
        if not label_dir.is_dir():
            continue
        for label in sorted(label_dir.rglob("*.txt")):
            if label not in stems:
                problems.add(str(label), R.label_without_image(label, folder))
    return records


#: Keys of a data yaml that are no split.
_NOT_SPLITS = frozenset({"path", "names", "nc", "download"})


def entry_of_test(content: dict[str, Any], test: str) -> Any:
    """What ``data.test`` names in a data yaml: the entry of that name (``test``), or else a
    folder / image list written as the yaml's entries are (relative to its ``path``).

    Example:
        >>> entry_of_test({"test": "images/test"}, "test"), entry_of_test({}, "images/holdout")
        ('images/test', 'images/holdout')
    """
    if test not in _NOT_SPLITS and content.get(test):
        return content[test]
    return test


def read_yolo(yaml_path: Path, splits: Sequence[str] = ("train", "val"), test: str | None = None) -> YoloData:
    """Read the splits a data yaml names (``train`` is required; others when present).

    Args:
        test: the recipe's ``data.test``: read as split ``test`` (see :func:`entry_of_test`).

    Raises:
        DataError: see :func:`load_data_yaml`; ``train`` missing from the yaml; a test entry
            that is no image folder or list.
    """
    content, root, names = load_data_yaml(yaml_path)
    if not content.get("train"):
        raise DataError(f"'{yaml_path}' has no 'train' entry.", fix="add train: <image folder relative to path>")
    out = YoloData(names, root)
    for split in splits:
        if not content.get(split):
            continue
        images, folders = _split_images(content[split], root, yaml_path, split)
        out.splits[split] = read_split(images, folders, names, out.problems)
    if test:
        images, folders = _split_images(entry_of_test(content, test), root, yaml_path, "test")
        out.splits["test"] = read_split(images, folders, names, out.problems)
    return out


def read_yolo_folder(folder: Path, names: Sequence[str], problems: LabelProblems) -> list[DetectionRecord]:
    """Records of the images under ``folder`` with their labels where YOLO keeps them (the
    last ``images`` folder of each path replaced by ``labels``), for classes ``names``; no
    data yaml needed (``visiontl eval RUN --images DIR`` of a detection run).

    Raises:
        DataError: ``folder`` is not a folder.
    """
    if not folder.is_dir():
        raise DataError(f"Image folder '{folder}' does not exist.", fix="pass a folder of images (labels in the matching labels/ folder)")
    images = sorted(q for q in folder.rglob("*") if q.is_file() and is_image_file(q))
    return read_split(images, [folder], names, problems)
