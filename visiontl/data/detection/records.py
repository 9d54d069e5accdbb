"""The one record type every detection format is read into, and the label-problem log.

COCO JSON and YOLO txt files are parsed into :class:`DetectionRecord` objects (one per image,
numpy only: no torch). Everything wrong with a label is written to a :class:`LabelProblems`
log under a ``file:line`` key (``file:annotation <id>`` for COCO JSON, whose lines mean
nothing), with a reason that says what was done about it. What was left out (``entries``)
becomes ``DataInfo.skipped`` and so the run summary's ``data.skipped`` and ``skipped_count``;
what was fixed and kept (``kept``: clipped boxes, background images) is counted by kind and
never reported as skipped.

The reasons are built here, in one place, so the documentation and the tests quote the exact
text users see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class DetectionRecord:
    """One image and its objects, in absolute pixel coordinates of the original image.

    Attributes:
        path: the image file.
        width, height: the image size in pixels.
        boxes: float32 ``[N, 4]`` boxes ``x1, y1, x2, y2``.
        labels: int64 ``[N]`` class indices, 0-based and contiguous.
        iscrowd: int64 ``[N]``: 1 for COCO crowd regions (ignored in training, handled by
            the evaluator), else 0.
        polygons: per object, a list of float32 ``[K, 2]`` polygons (absolute pixels), or
            ``None`` when the format gives no segmentation at all.
        rles: per object, a COCO RLE dict (``{"size": [h, w], "counts": ...}``) where COCO
            gives RLE instead of polygons, else ``None`` entries; ``None`` when no object has one.
        image_id: the id of the image in its source (COCO ``id``; running index for YOLO).
        source: the label file (YOLO txt) or annotation file (COCO JSON) it came from.
    """

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray
    polygons: list[list[np.ndarray]] | None = None
    rles: list[dict[str, Any] | None] | None = None
    image_id: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.iscrowd = np.asarray(self.iscrowd, dtype=np.int64).reshape(-1)
        n = len(self.boxes)
        if len(self.labels) != n or len(self.iscrowd) != n:
            raise ValueError(f"{self.path}: {n} boxes but {len(self.labels)} labels and {len(self.iscrowd)} iscrowd flags")
        if self.polygons is not None and len(self.polygons) != n:
            raise ValueError(f"{self.path}: {n} boxes but {len(self.polygons)} polygon lists")
        if self.rles is not None and len(self.rles) != n:
            raise ValueError(f"{self.path}: {n} boxes but {len(self.rles)} RLE entries")

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def has_segmentation(self) -> bool:
        """Whether every object has a polygon or an RLE mask."""
        if self.polygons is None and self.rles is None:
            return len(self) == 0
        return all(self.object_has_mask(i) for i in range(len(self)))

    def object_has_mask(self, i: int) -> bool:
        """Whether object ``i`` has a polygon or an RLE mask."""
        if self.rles is not None and self.rles[i] is not None:
            return True
        return self.polygons is not None and bool(self.polygons[i])


@dataclass
class LabelProblems:
    """Problems found while reading labels, in two logs keyed by ``file:line``.

    Attributes:
        entries: what was left out (an object, a line, an image, a label file) and why; this
            log becomes ``DataInfo.skipped``.
        kept: what was noticed and fixed or accepted, the item being kept (a box clipped
            to the image, a background image, a box used as a mask); never counted as skipped.
        kinds: the places of each kind of ``kept`` note (``"boxes clipped to the image"``...),
            for the counted warnings and the run summary.
    """

    entries: dict[str, str] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, list[str]] = field(default_factory=dict)

    def add(self, where: str, reason: str) -> None:
        """Record something left out; a second reason at the same place is appended."""
        _append(self.entries, where, reason)

    def note(self, where: str, reason: str, kind: str) -> None:
        """Record something kept after a fix (``kind`` counts it, e.g. ``"boxes clipped to the image"``)."""
        if where in self.kept and reason in self.kept[where]:
            return  # one place read twice (the same file as train and val) counts once
        _append(self.kept, where, reason)
        self.kinds.setdefault(kind, []).append(where)

    def update(self, other: LabelProblems | dict[str, str]) -> None:
        """Merge another log (a plain dict is taken as left-out entries)."""
        if isinstance(other, LabelProblems):
            for where, reason in other.entries.items():
                self.add(where, reason)
            for where, reason in other.kept.items():
                _append(self.kept, where, reason)
            for kind, places in other.kinds.items():
                mine = self.kinds.setdefault(kind, [])
                seen = set(mine)
                mine.extend(p for p in places if p not in seen)
        else:
            for where, reason in other.items():
                self.add(where, reason)

    def __len__(self) -> int:
        """The number of places where something was left out (kept notes not counted)."""
        return len(self.entries)

    def kept_counts(self) -> dict[str, int]:
        """Kept notes per kind, e.g. ``{"boxes clipped to the image": 3}``."""
        return {kind: len(places) for kind, places in self.kinds.items()}


def _append(log: dict[str, str], where: str, reason: str) -> None:
    if where in log and reason not in log[where]:
        log[where] = f"{log[where]}; {reason}"
    else:
        log[where] = reason


#: Kinds of kept notes, as the counted warnings say them ("3 boxes clipped to the image").
CLIPPED = "boxes clipped to the image"
BACKGROUND = "images without a label file kept as background images"
SIZE_MISMATCH = "images whose annotated size differs from the file"
BOX_AS_MASK = "objects without segmentation use their box as mask"


# --------------------------------------------------------------------------- reasons
# Every message a user can see about a label, built in one place.


def _fmt_box(box: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in (round(float(x), 2) for x in box)) + "]"


def class_out_of_range(class_id: int, num_classes: int) -> str:
    """YOLO: a class id the data yaml does not name."""
    return f"class id {class_id} out of range (the data yaml names {num_classes} classes: 0..{num_classes - 1}); object dropped"


def unknown_category(category_id: Any, known: Sequence[int]) -> str:
    """COCO: an annotation's category_id is not one of the file's categories."""
    shown = ", ".join(str(k) for k in list(known)[:10]) + (" ..." if len(known) > 10 else "")
    return f"category_id {category_id} is not one of the categories ({shown}); object dropped"


def category_not_selected(name: str) -> str:
    """COCO: a category left out by ``data.class_names``."""
    return f"category '{name}' is not in data.class_names; object dropped"


def unknown_image_id(image_id: Any) -> str:
    """COCO: an annotation names an image the file does not list."""
    return f"image_id {image_id} is not in the file's images; object dropped"


def malformed_yolo_line(line: str) -> str:
    """YOLO: a line that is neither a box nor a polygon."""
    text = line.strip()
    shown = text if len(text) <= 60 else text[:57] + "..."
    return (
        f"malformed line '{shown}': expected 'class cx cy w h' (normalised) or "
        "'class x1 y1 x2 y2 x3 y3 ...' (a polygon); line dropped"
    )


def malformed_annotation(what: str) -> str:
    """COCO: an annotation whose bbox/segmentation cannot be read."""
    return f"malformed annotation: {what}; object dropped"


def box_outside(box: Sequence[float], width: int, height: int) -> str:
    """A box with no part inside the image."""
    return f"box {_fmt_box(box)} lies entirely outside the {width}x{height} image; object dropped"


def box_zero_area(box: Sequence[float]) -> str:
    """A box of zero width or height (after clipping)."""
    return f"box {_fmt_box(box)} has zero area; object dropped"


def box_clipped(box: Sequence[float], clipped: Sequence[float], width: int, height: int) -> str:
    """A box partly outside the image, clipped to it."""
    return f"box {_fmt_box(box)} extends outside the {width}x{height} image; clipped to {_fmt_box(clipped)}"


def label_without_image(label: Path, looked_in: Path) -> str:
    """YOLO: a label file whose image does not exist."""
    return f"label file without an image (no {label.stem}.<image extension> in {looked_in}); labels ignored"


def image_file_missing(path: Path, objects: int) -> str:
    """COCO: an image listed in the JSON whose file does not exist."""
    return f"image file not found: {path}; its {objects} object(s) ignored"


def image_without_label(label: Path) -> str:
    """YOLO: an image with no label file: a background image, kept."""
    return f"no label file ({label}): kept as a background image (no objects)"


def image_unreadable(reason: str) -> str:
    """An image whose header cannot be read."""
    return f"{reason}; image dropped"


def size_mismatch(declared: tuple[int, int], actual: tuple[int, int]) -> str:
    """COCO: the JSON's width/height disagree with the file."""
    return (
        f"the annotation file says {declared[0]}x{declared[1]} but the image is "
        f"{actual[0]}x{actual[1]}; boxes kept as annotated, checked against the real size"
    )


def no_segmentation() -> str:
    """Instance segmentation: an object without polygon or RLE."""
    return "object has no segmentation (polygon or RLE); its box is used as its mask"


# --------------------------------------------------------------------------- boxes


def check_box(
    box: Sequence[float], width: int, height: int, where: str, problems: LabelProblems
) -> np.ndarray | None:
    """Clip ``box`` (xyxy, absolute) to the image; report and drop the hopeless ones.

    Returns:
        The clipped box, or ``None`` when the box is entirely outside the image or of zero
        area (both recorded at ``where`` as left out). A box clipped and kept is recorded as
        a kept note (:data:`CLIPPED`), not as left out.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(np.isfinite([x1, y1, x2, y2])):
        problems.add(where, malformed_annotation(f"box {_fmt_box(box)} is not finite"))
        return None
    if x2 <= x1 or y2 <= y1:
        problems.add(where, box_zero_area(box))
        return None
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        problems.add(where, box_outside(box, width, height))
        return None
    clipped = [min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height)]
    if clipped[2] - clipped[0] <= 0 or clipped[3] - clipped[1] <= 0:
        problems.add(where, box_zero_area(clipped))
        return None
    # A tolerance of a hundredth of a pixel: COCO exporters round, and a box ending at
    # 640.004 on a 640-pixel image is not worth a warning.
    if any(abs(a - b) > 1e-2 for a, b in zip(clipped, (x1, y1, x2, y2), strict=True)):
        # Kept, so not skipped: a note, counted in the "N boxes clipped" warning.
        problems.note(where, box_clipped(box, clipped, width, height), CLIPPED)
    return np.asarray(clipped, dtype=np.float32)


def empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


def class_counts(records: Sequence[DetectionRecord], class_names: Sequence[str]) -> dict[str, int]:
    """Objects per class (crowd regions not counted)."""
    counts = np.zeros(len(class_names), dtype=np.int64)
    for r in records:
        keep = r.iscrowd == 0
        counts += np.bincount(r.labels[keep], minlength=len(class_names))[: len(class_names)]
    return {n: int(c) for n, c in zip(class_names, counts, strict=True)}
