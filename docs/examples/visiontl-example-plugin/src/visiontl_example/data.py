"""Multi-label data: a CSV of ``path,labels`` and a synthetic dataset to try it on.

The CSV format (one header row; more columns are ignored)::

    path,labels
    images/0001.jpg,cat dog
    images/0002.jpg,dog
    images/0003.jpg,

``labels`` holds zero or more class names separated by spaces or ``;`` (an empty cell is an
image with none of the classes: a valid negative for every class). Paths are relative to the
CSV's folder, or to ``data.image_root``. Unreadable images are listed as skipped with the
reason, never silently dropped.
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl.data.images import UnreadableImage, load_rgb, probe_image
from visiontl.errors import DataError
from visiontl.ids import suggest

PATH_COLUMNS = ("path", "image", "file", "filename")
LABELS_COLUMNS = ("labels", "tags", "label")
SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Item:
    """One image and the indices of its labels."""

    path: Path
    labels: tuple[int, ...]


@dataclass
class Split:
    """The items of one CSV plus what was left out while reading it."""

    items: list[Item] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unreadable:
    """Returned by the dataset instead of an item whose file cannot be decoded."""

    index: int
    path: str
    reason: str


def _column(names: Sequence[str], wanted: Sequence[str]) -> str | None:
    lowered = {n.strip().lower(): n for n in names}
    return next((lowered[w] for w in wanted if w in lowered), None)


def read_rows(csv_path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line number, path, label names)`` of every row of a multi-label CSV.

    Raises:
        DataError: the file is missing or its header has no path or labels column.
    """
    if not csv_path.is_file():
        raise DataError(f"CSV file '{csv_path}' does not exist.", fix="check data.root and data.train/data.val")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        names = reader.fieldnames or []
        pcol, lcol = _column(names, PATH_COLUMNS), _column(names, LABELS_COLUMNS)
        if pcol is None or lcol is None:
            raise DataError(
                f"CSV '{csv_path}' needs a header with a path column ({'/'.join(PATH_COLUMNS)}) and a "
                f"labels column ({'/'.join(LABELS_COLUMNS)}); found {names}.",
                fix="add a header row such as: path,labels",
            )
        return [(i + 2, (row.get(pcol) or "").strip(), re.split(r"[\s;]+", (row.get(lcol) or "").strip())) for i, row in enumerate(reader)]


def class_names_of(rows: Sequence[tuple[int, str, list[str]]]) -> list[str]:
    """Every label name used, sorted."""
    return sorted({name for _, _, labels in rows for name in labels if name})


def scan(csv_path: Path, image_root: Path | None, class_names: Sequence[str]) -> Split:
    """Read a CSV into items whose labels are indices into ``class_names``.

    Raises:
        DataError: a row names a class that is not in ``class_names`` (a typo, or a class
            the training split does not have), with the nearest known name.
    """
    index = {name: i for i, name in enumerate(class_names)}
    base = image_root or csv_path.parent
    out = Split()
    for line, rel, labels in read_rows(csv_path):
        where = f"{csv_path}:{line}"
        if not rel:
            out.skipped[where] = "empty path"
            continue
        unknown = [name for name in labels if name and name not in index]
        if unknown:
            close = suggest(unknown[0], class_names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise DataError(
                f"{where}: label '{unknown[0]}' is not one of the classes {list(class_names)}.{hint}",
                fix="fix the label, or list every class in data.class_names",
            )
        path = Path(rel) if Path(rel).is_absolute() else base / rel
        problem = probe_image(path)
        if problem:
            out.skipped[str(path)] = problem
            continue
        out.items.append(Item(path, tuple(sorted({index[name] for name in labels if name}))))
    return out


def split_off(items: Sequence[Item], fraction: float | None, last: int | None, seed: int) -> tuple[list[Item], list[Item]]:
    """(train, val) carved from one list: a seeded random ``fraction``, or the ``last`` N by name."""
    if last is not None:
        ordered = sorted(items, key=lambda it: it.path.name)
        if last >= len(ordered):
            raise DataError(f"data.val_last is {last} but the training CSV has only {len(ordered)} usable rows.")
        return ordered[:-last], ordered[-last:]
    assert fraction is not None
    shuffled = sorted(items, key=lambda it: str(it.path))
    random.Random(seed).shuffle(shuffled)
    n_val = max(1, round(len(shuffled) * fraction))
    return shuffled[n_val:], shuffled[:n_val]


def counts(items: Sequence[Item], class_names: Sequence[str]) -> dict[str, int]:
    """Images per class (an image counts once for each of its labels)."""
    out = dict.fromkeys(class_names, 0)
    for item in items:
        for label in item.labels:
            out[class_names[label]] += 1
    return out


class MultiLabelDataset:
    """Items ``(image tensor, multi-hot float tensor, index, path)``, or :class:`Unreadable`."""

    def __init__(self, items: Sequence[Item], num_classes: int, transform: Callable[[Any], Any]) -> None:
        self.items = list(items)
        self.num_classes = num_classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, Any, int, str] | Unreadable:
        import torch

        item = self.items[index]
        try:
            image = load_rgb(item.path)
        except UnreadableImage as exc:
            return Unreadable(index, str(item.path), str(exc))
        target = torch.zeros(self.num_classes, dtype=torch.float32)
        target[list(item.labels)] = 1.0
        return self.transform(image), target, index, str(item.path)


# --------------------------------------------------------------------------- synthetic data


def _draw(shapes: Sequence[str], size: int, rng: random.Random) -> Any:
    import numpy as np
    from PIL import Image, ImageDraw

    bg = tuple(rng.randint(150, 255) for _ in range(3))
    noise = np.random.default_rng(rng.randint(0, 2**31)).integers(-12, 13, (size, size, 3))
    img = Image.fromarray(np.clip(np.array(bg)[None, None, :] + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    half = size / 2
    # One shape per quadrant, so shapes never overlap and each stays recognisable.
    for shape, (qx, qy) in zip(shapes, rng.sample([(0, 0), (1, 0), (0, 1), (1, 1)], len(shapes)), strict=False):
        fg = tuple(rng.randint(0, 110) for _ in range(3))
        r = rng.uniform(0.28, 0.45) * half
        cx = qx * half + rng.uniform(r, half - r)
        cy = qy * half + rng.uniform(r, half - r)
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
        elif shape == "square":
            draw.rectangle([cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85], fill=fg)
        else:
            draw.polygon([(cx, cy - r), (cx - r * 0.95, cy + r * 0.8), (cx + r * 0.95, cy + r * 0.8)], fill=fg)
    return img


def make_shapes(root: Path, train: int = 240, val: int = 90, size: int = 64, seed: int = 0) -> Path:
    """Write a multi-label shapes dataset: each image holds each of circle, square and
    triangle with probability 1/2 (so 1/8 hold none), as ``root/images/<split>/*.png`` with
    ``root/train.csv`` and ``root/val.csv``. Deterministic for a seed.

    Returns:
        ``root``.
    """
    rng = random.Random(seed)
    for split, n in (("train", train), ("val", val)):
        folder = root / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(n):
            present = [s for s in SHAPES if rng.random() < 0.5]
            name = f"{split}_{i:04d}.png"
            _draw(present, size, rng).save(folder / name)
            rows.append((f"images/{split}/{name}", " ".join(present)))
        with (root / f"{split}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "labels"])
            writer.writerows(rows)
    (root / "README.txt").write_text(
        "Synthetic multi-label shapes generated by visiontl-example-plugin (data.synthesize: shapes).\n"
        f"{train} train and {val} val images, {size}x{size} px, seed {seed}; each shape present with probability 1/2.\n",
        encoding="utf-8",
    )
    return root


def main(argv: list[str] | None = None) -> None:
    """``python -m visiontl_example.data DIR``: write the synthetic dataset to DIR."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m visiontl_example.data DIR", file=sys.stderr)
        raise SystemExit(2)
    print(make_shapes(Path(args[0])))


if __name__ == "__main__":
    main()
