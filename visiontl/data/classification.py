"""Classification datasets: ImageFolder layouts and CSV files, robust to bad files."""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl.data.images import UnreadableImage, is_image_file, load_rgb, probe_image
from visiontl.errors import DataError


@dataclass
class Sample:
    path: Path
    label: int


@dataclass
class SampleList:
    """Samples of one split plus what was left out while scanning."""

    samples: list[Sample] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unreadable:
    """Returned by a dataset instead of an item whose file cannot be decoded."""

    index: int
    path: str
    reason: str


def resolve_dir(root: str, data_root: Path) -> Path:
    """A dataset path: absolute, relative to the working directory, or to the data root."""
    p = Path(root).expanduser()
    if p.is_absolute():
        return p
    if (Path.cwd() / p).exists():
        return (Path.cwd() / p).resolve()
    return (data_root / p).resolve()


def scan_imagefolder(folder: Path, class_names: Sequence[str] | None = None) -> tuple[list[str], SampleList]:
    """Scan ``folder/<class>/**/<image>``.

    Files with other extensions are listed as skipped (never silently dropped), hidden
    files are ignored, and each image's header is checked.

    Returns:
        (class names in label order, samples).
    """
    if not folder.is_dir():
        raise DataError(
            f"Dataset folder '{folder}' does not exist.",
            fix="check data.root and data.train/val, and the data root ($VISIONTL_DATA_DIR, default ./data)",
        )
    found = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    names = list(class_names) if class_names else found
    if not names:
        raise DataError(
            f"'{folder}' has no class subfolders.",
            fix="lay the images out as <split>/<class>/<image>, or use data.format: csv",
        )
    extra = [d for d in found if d not in names]
    out = SampleList()
    for d in extra:
        out.skipped[str(folder / d)] = "class folder not in data.class_names"
    for label, name in enumerate(names):
        cdir = folder / name
        if not cdir.is_dir():
            continue
        for path in sorted(p for p in cdir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if not is_image_file(path):
                out.skipped[str(path)] = f"not an image file ({path.suffix or 'no extension'})"
                continue
            problem = probe_image(path)
            if problem:
                out.skipped[str(path)] = problem
                continue
            out.samples.append(Sample(path, label))
    return names, out


_PATH_COLUMNS = ("path", "image", "filename", "file", "img")
_LABEL_COLUMNS = ("label", "class", "target", "category")


def scan_csv(csv_path: Path, image_root: Path | None, class_names: Sequence[str] | None) -> tuple[list[str], SampleList]:
    """Read a ``path,label`` CSV (header row required; common column names accepted)."""
    if not csv_path.is_file():
        raise DataError(f"CSV file '{csv_path}' does not exist.", fix="check data.root and data.train/val")
    base = image_root or csv_path.parent
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        pcol = next((reader.fieldnames[i] for i, h in enumerate(header) if h in _PATH_COLUMNS), None) if reader.fieldnames else None
        lcol = next((reader.fieldnames[i] for i, h in enumerate(header) if h in _LABEL_COLUMNS), None) if reader.fieldnames else None
        if pcol is None or lcol is None:
            raise DataError(
                f"CSV '{csv_path}' needs a header with a path column ({'/'.join(_PATH_COLUMNS)}) "
                f"and a label column ({'/'.join(_LABEL_COLUMNS)}); found {reader.fieldnames}.",
                fix="add a header row such as: path,label",
            )
        rows = [(i + 2, (r.get(pcol) or "").strip(), (r.get(lcol) or "").strip()) for i, r in enumerate(reader)]
    labels = sorted({lab for _, _, lab in rows if lab})
    names = list(class_names) if class_names else labels
    index = {n: i for i, n in enumerate(names)}
    out = SampleList()
    for line, rel, lab in rows:
        where = f"{csv_path}:{line}"
        if not rel or not lab:
            out.skipped[where] = "empty path or label"
            continue
        if lab not in index:
            out.skipped[where] = f"label '{lab}' not in data.class_names"
            continue
        path = Path(rel) if Path(rel).is_absolute() else base / rel
        problem = probe_image(path)
        if problem:
            out.skipped[str(path)] = problem
            continue
        out.samples.append(Sample(path, index[lab]))
    return names, out


def stratified_split(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split samples into (train, val) with ``fraction`` of each class in val (at least one
    per class with two or more samples), deterministically from ``seed``."""
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s.label].append(s)
    rng = random.Random(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    for label in sorted(by_class):
        items = sorted(by_class[label], key=lambda s: str(s.path))
        rng.shuffle(items)
        n_val = max(1, round(len(items) * fraction)) if len(items) > 1 else 0
        val.extend(items[:n_val])
        train.extend(items[n_val:])
    return train, val


def hold_out_last(samples: Sequence[Sample], count: int) -> tuple[list[Sample], list[Sample]]:
    """Split off the last ``count`` samples (sorted by file name) as validation."""
    ordered = sorted(samples, key=lambda s: s.path.name)
    if count >= len(ordered):
        raise DataError(f"data.val_last is {count} but the training split has only {len(ordered)} items.")
    return ordered[:-count], ordered[-count:]


def limit_per_class(samples: Sequence[Sample], limit: int | None) -> list[Sample]:
    """Keep at most ``limit`` samples per class (first in scan order)."""
    if limit is None:
        return list(samples)
    seen: Counter[int] = Counter()
    out = []
    for s in samples:
        if seen[s.label] < limit:
            out.append(s)
            seen[s.label] += 1
    return out


def count_per_class(samples: Sequence[Sample], names: Sequence[str]) -> dict[str, int]:
    counts = Counter(s.label for s in samples)
    return {n: counts.get(i, 0) for i, n in enumerate(names)}


class ImageClassificationDataset:
    """Items ``(image_tensor, label, index, path)``, or :class:`Unreadable` for bad files.

    Decoding happens in ``__getitem__`` (in worker processes when ``workers > 0``); a file
    that fails is returned as :class:`Unreadable` so the collate step can drop and report it.
    """

    def __init__(self, samples: Sequence[Sample], transform: Callable[[Any], Any]) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[int]:
        return [s.label for s in self.samples]

    def __getitem__(self, index: int) -> tuple[Any, int, int, str] | Unreadable:
        sample = self.samples[index]
        try:
            image = load_rgb(sample.path)
        except UnreadableImage as exc:
            return Unreadable(index, str(sample.path), str(exc))
        return self.transform(image), sample.label, index, str(sample.path)
