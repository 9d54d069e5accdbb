"""Classification datasets: ImageFolder layouts and CSV files, robust to bad files."""

from __future__ import annotations

import csv
import os
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl import log
from visiontl.data.images import UnreadableImage, is_image_file, load_rgb, probe_image
from visiontl.data.paths import resolve_data_path
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
    """A dataset path, resolved in the documented order (see :mod:`visiontl.data.paths`):
    absolute as given, else under the data root, else under the working directory.

    Kept for callers that check existence themselves: a path found nowhere resolves to its
    place under the data root (where ``data.synthesize`` creates a dataset). New code calls
    :func:`visiontl.data.paths.resolve_data_path`, whose error lists every place tried.
    """
    return resolve_data_path(root, data_root, what="dataset path", must_exist=False)


#: Folders that are never classes: archive debris and tool folders. Any folder whose name
#: starts with "." (``.ipynb_checkpoints``, ``.git``) is hidden and
#: never a class either.
JUNK_FOLDERS = frozenset({"__MACOSX", "__pycache__"})


def is_junk_folder(name: str) -> bool:
    """Whether a folder name is hidden (starts with ".") or archive/tool debris (``__MACOSX``)."""
    return name.startswith(".") or name in JUNK_FOLDERS


def _files_under(folder: Path) -> tuple[list[Path], list[Path]]:
    """(files under ``folder`` without hidden ones, junk folders pruned on the way), sorted."""
    files: list[Path] = []
    junk: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = Path(dirpath)
        junk.extend(here / d for d in dirnames if is_junk_folder(d))
        dirnames[:] = sorted(d for d in dirnames if not is_junk_folder(d))
        files.extend(here / f for f in filenames if not f.startswith("."))
    return sorted(files), sorted(junk)


def _quoted(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(f"'{n}'" for n in list(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _rows(lines: Sequence[int], limit: int = 5) -> str:
    shown = ", ".join(str(n) for n in list(lines)[:limit]) + (", ..." if len(lines) > limit else "")
    return f"{len(lines)} row{'s' if len(lines) != 1 else ''}: {shown}"


#: What happens to a class that has no usable image in one split.
_ZERO_CLASS = (
    "they stay classes with 0 images in this split (a class without training images is never "
    "learnt; one without validation images is never scored)"
)
#: Where the class list of a second scan comes from.
_CLASS_SOURCE = "data.class_names, or the classes of the training split"


def scan_imagefolder(folder: Path, class_names: Sequence[str] | None = None) -> tuple[list[str], SampleList]:
    """Scan ``folder/<class>/**/<image>``.

    Files with other extensions are listed as skipped (never silently dropped), hidden
    files are ignored, and each image's header is checked. Hidden folders and archive
    debris (``.ipynb_checkpoints``, ``__MACOSX``, see :func:`is_junk_folder`) are never
    classes nor searched for images, with a warning naming them.

    Without ``class_names`` the classes are the sorted folders that hold at least one
    usable image; empty folders are not classes (a warning names them). With
    ``class_names`` (the recipe's, or the training split's when scanning validation),
    folders that are no class are left out and named in a warning with their image count,
    and classes with no usable image here are named in a warning too.

    Returns:
        (class names in label order, samples).

    Raises:
        DataError: ``folder`` does not exist, or no folder in it is a class.
    """
    if not folder.is_dir():
        raise DataError(
            f"Dataset folder '{folder}' does not exist.",
            fix="check data.root and data.train/val, and the data root ($VISIONTL_DATA_DIR, default ./data)",
        )
    subdirs = sorted(d.name for d in folder.iterdir() if d.is_dir())
    junk = [folder / d for d in subdirs if is_junk_folder(d)]
    found = [d for d in subdirs if not is_junk_folder(d)]
    named = list(class_names) if class_names else None
    out = SampleList()
    usable: dict[str, list[Path]] = {}
    n_files: dict[str, int] = {}
    for name in found if named is None else [n for n in named if (folder / n).is_dir()]:
        files, nested_junk = _files_under(folder / name)
        junk += nested_junk
        n_files[name] = len(files)
        usable[name] = []
        for path in files:
            if not is_image_file(path):
                out.skipped[str(path)] = f"not an image file ({path.suffix or 'no extension'})"
                continue
            problem = probe_image(path)
            if problem:
                out.skipped[str(path)] = problem
                continue
            usable[name].append(path)
    if junk:
        rel = [p.relative_to(folder).as_posix() for p in junk]
        log.warning(f"'{folder}': {len(rel)} hidden or junk folder(s) ignored, not classes: {_quoted(rel)}.")
    if named is None:
        names = [n for n in found if usable[n]]
        empty = [n for n in found if not usable[n]]
        if empty:
            described = ", ".join(
                f"'{n}' ({'empty' if not n_files[n] else f'{n_files[n]} file(s), none usable'})" for n in empty[:10]
            )
            log.warning(f"'{folder}': {len(empty)} folder(s) hold no usable image and are not classes: {described}.")
    else:
        names = named
        extra = [d for d in found if d not in named]
        extra_images = {d: sum(1 for p in _files_under(folder / d)[0] if is_image_file(p)) for d in extra}
        extra = [d for d in extra if extra_images[d]]
        for d in extra:
            out.skipped[str(folder / d)] = (
                f"folder is not one of the classes ({_CLASS_SOURCE}); its {extra_images[d]} image file(s) left out"
            )
        if extra:
            described = ", ".join(f"'{d}' ({extra_images[d]} images)" for d in extra[:10])
            log.warning(
                f"'{folder}': folder(s) {described} "
                f"are not among the {len(named)} classes ({_CLASS_SOURCE}): their images are left out of this split."
            )
        missing = [n for n in named if not usable.get(n)]
        if missing:
            log.warning(f"'{folder}': class(es) {_quoted(missing)} have no usable image here: {_ZERO_CLASS}.")
    if not names:
        if found:
            raise DataError(
                f"No folder in '{folder}' holds a usable image ({len(out.skipped)} file(s) skipped).",
                fix="lay the images out as <split>/<class>/<image> and check the files listed as skipped",
            )
        raise DataError(
            f"'{folder}' has no class subfolders.",
            fix="lay the images out as <split>/<class>/<image>, or use data.format: csv",
        )
    for label, name in enumerate(names):
        out.samples.extend(Sample(path, label) for path in usable.get(name, []))
    return names, out


_PATH_COLUMNS = ("path", "image", "filename", "file", "img")
_LABEL_COLUMNS = ("label", "class", "target", "category")


def _read_csv(csv_path: Path) -> list[tuple[int, str, str]]:
    """(line number, path stripped, label as written) of each data row."""
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
        return [(i + 2, (r.get(pcol) or "").strip(), r.get(lcol) or "") for i, r in enumerate(reader)]


def _check_spellings(csv_path: Path, rows: Sequence[tuple[int, str, str]], names: Sequence[str] | None) -> None:
    """Labels that differ only in case or surrounding spaces are an error, never new classes."""
    spellings: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for line, _, raw in rows:
        if raw.strip():
            spellings[raw.strip().casefold()][raw].append(line)
    clashes = [v for v in spellings.values() if len(v) > 1]
    if clashes:
        described = "; ".join(" vs ".join(f"{raw!r} ({_rows(lines)})" for raw, lines in v.items()) for v in clashes[:5])
        raise DataError(
            f"CSV '{csv_path}' spells {len(clashes)} label(s) in ways that differ only in case or surrounding "
            f"spaces: {described}. Each spelling would become a class of its own.",
            fix="write each class with one spelling in every row (same case, no stray spaces)",
        )
    if not names:
        return
    exact = set(names)
    folded = {n.casefold(): n for n in names}
    near: dict[str, list[int]] = defaultdict(list)
    for line, _, raw in rows:
        lab = raw.strip()
        if lab and lab not in exact and lab.casefold() in folded:
            near[lab].append(line)
    if near:
        described = "; ".join(f"'{lab}' ({_rows(lines)}) vs class '{folded[lab.casefold()]}'" for lab, lines in near.items())
        raise DataError(
            f"CSV '{csv_path}' has label(s) that match a class only when case is ignored: {described}.",
            fix=f"spell the labels exactly as the classes ({_CLASS_SOURCE})",
        )


def scan_csv(csv_path: Path, image_root: Path | None, class_names: Sequence[str] | None) -> tuple[list[str], SampleList]:
    """Read a ``path,label`` CSV (header row required; common column names accepted).

    Labels are stripped of surrounding spaces. Two spellings of one label that differ only
    in case or spaces (``Cat``/``cat ``) are an error, as is a label that matches a class of
    ``class_names`` only when case is ignored. Rows for the same image: identical duplicates
    are used once (a warning gives the count); different labels for one image are an error.
    Without ``class_names`` the classes are the sorted labels that keep at least one usable
    image; with them, rows of other labels are left out and named in a warning.

    Raises:
        DataError: the file is missing or has no usable header, labels clash, or an image
            has two labels.
    """
    if not csv_path.is_file():
        raise DataError(f"CSV file '{csv_path}' does not exist.", fix="check data.root and data.train/val")
    base = image_root or csv_path.parent
    rows = _read_csv(csv_path)
    named = list(class_names) if class_names else None
    _check_spellings(csv_path, rows, named)
    out = SampleList()
    by_image: dict[str, list[tuple[int, Path, str]]] = defaultdict(list)
    for line, rel, raw in rows:
        lab = raw.strip()
        if not rel or not lab:
            out.skipped[f"{csv_path}:{line}"] = "empty path or label"
            continue
        path = Path(rel) if Path(rel).is_absolute() else base / rel
        by_image[os.path.normpath(path)].append((line, path, lab))
    conflicts = {key: entries for key, entries in by_image.items() if len({lab for _, _, lab in entries}) > 1}
    if conflicts:
        described = "; ".join(
            f"'{entries[0][1]}' is " + " and ".join(f"'{lab}' (row {line})" for line, _, lab in entries)
            for entries in list(conflicts.values())[:5]
        )
        raise DataError(
            f"CSV '{csv_path}' gives {len(conflicts)} image(s) more than one label: {described}.",
            fix="keep one row per image, with its right label",
        )
    repeated = [entries for entries in by_image.values() if len(entries) > 1]
    if repeated:
        first = repeated[0]
        log.warning(
            f"CSV '{csv_path}': {sum(len(e) - 1 for e in repeated)} duplicate row(s) repeat the path and label of "
            f"another row ({len(repeated)} image(s), e.g. '{first[0][1]}' on rows {', '.join(str(line) for line, _, _ in first)}); "
            "each image is used once."
        )
    unknown: dict[str, int] = defaultdict(int)
    usable: list[tuple[Path, str]] = []
    for entries in by_image.values():
        line, path, lab = entries[0]
        if named is not None and lab not in named:
            out.skipped[f"{csv_path}:{line}"] = f"label '{lab}' is not one of the classes ({_CLASS_SOURCE}); row left out"
            unknown[lab] += len(entries)
            continue
        problem = probe_image(path)
        if problem:
            out.skipped[str(path)] = problem
            continue
        usable.append((path, lab))
    kept = {lab for _, lab in usable}
    if named is None:
        names = sorted(kept)
        lost = sorted({lab for entries in by_image.values() for _, _, lab in entries} - kept)
        if lost:
            log.warning(
                f"CSV '{csv_path}': label(s) {_quoted(lost)} have no usable image (every row of them was skipped) "
                "and are not classes."
            )
    else:
        names = named
        if unknown:
            described = ", ".join(f"'{lab}' ({n} row(s))" for lab, n in sorted(unknown.items()))
            log.warning(
                f"CSV '{csv_path}': label(s) {described} are not among the {len(named)} classes ({_CLASS_SOURCE}): "
                "those rows are left out."
            )
        missing = [n for n in named if n not in kept]
        if missing:
            log.warning(f"CSV '{csv_path}': class(es) {_quoted(missing)} have no usable image here: {_ZERO_CLASS}.")
    index = {n: i for i, n in enumerate(names)}
    out.samples.extend(Sample(path, index[lab]) for path, lab in usable)
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
