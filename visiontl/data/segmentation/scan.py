"""Finding image/mask pairs, checking them, and splitting them into train and validation.

Images and masks are matched by their path relative to their folder, without the extension
(``images/a/b.jpg`` <-> ``masks/a/b.png``), so any image extension works. Every problem is
reported with the file and a reason, and the pair is left out: an image without a mask, a mask
without an image, two images with one stem, an unreadable image or mask, a mask whose size
differs from its image, a mask with values that map to no class. A run stops only when a split
has nothing usable left.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visiontl.data.images import is_image_file, probe_image
from visiontl.data.paths import provenance, resolve_data_path
from visiontl.data.segmentation.classes import (
    ClassesYaml,
    ClassSpec,
    check_ignore_index,
    class_spec,
    read_classes_yaml,
)
from visiontl.data.segmentation.masks import (
    MaskDecoder,
    MaskError,
    describe_unknown,
    read_mask_values,
)
from visiontl.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.config.schema import DataSection


@dataclass(frozen=True)
class Pair:
    """An image and its mask."""

    image: Path
    mask: Path


@dataclass(frozen=True)
class Layout:
    """Resolved folders of a masks dataset.

    Attributes:
        train_images, train_masks: the training folders.
        val_images, val_masks: the validation folders, or ``None`` when carved from train.
        classes_yaml: the classes yaml, if one was given.
        test_images, test_masks: the test folders (``data.test``/``data.test_masks``), or ``None``.
    """

    train_images: Path
    train_masks: Path
    val_images: Path | None
    val_masks: Path | None
    classes_yaml: ClassesYaml | None = None
    test_images: Path | None = None
    test_masks: Path | None = None


@dataclass
class ScanResult:
    """What scanning a masks dataset found.

    Attributes:
        class_names: class names in label order.
        decoder: stored mask values -> labels.
        spec: where the classes came from.
        train, val: usable pairs.
        skipped: path -> reason for everything left out.
        pixels: split -> labelled pixels per class (ignored pixels excluded).
        layout: the folders read.
        provenance: ``DataInfo.provenance`` of the usable images (see
            :func:`visiontl.data.paths.provenance`).
        test: usable pairs of the test split (empty without ``data.test``).
    """

    class_names: list[str]
    decoder: MaskDecoder
    spec: ClassSpec
    train: list[Pair]
    val: list[Pair]
    skipped: dict[str, str] = field(default_factory=dict)
    pixels: dict[str, list[int]] = field(default_factory=dict)
    layout: Layout | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    test: list[Pair] = field(default_factory=list)


def _key(path: Path, folder: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def pair_folder(images: Path, masks: Path) -> tuple[list[Pair], dict[str, str]]:
    """Match the images under ``images`` with the masks under ``masks`` by relative stem.

    Returns:
        (pairs sorted by image path, skipped path -> reason).

    Raises:
        DataError: a folder does not exist.
    """
    for what, folder in (("image", images), ("mask", masks)):
        if not folder.is_dir():
            raise DataError(f"The {what} folder '{folder}' does not exist.", fix="check data.root and data.images/data.masks (or data.train/val, data.val_images/val_masks, data.yaml)")
    skipped: dict[str, str] = {}
    by_key: dict[str, Path] = {}
    for path in _files(images):
        if not is_image_file(path):
            skipped[str(path)] = f"not an image file ({path.suffix or 'no extension'})"
            continue
        key = _key(path, images)
        if key in by_key:
            skipped[str(path)] = f"another image has the same stem ({by_key[key].name}): its mask would be ambiguous"
            continue
        by_key[key] = path
    masks_by_key: dict[str, Path] = {}
    for path in _files(masks):
        if not is_image_file(path):
            continue  # masks folders often hold READMEs or colour legends
        key = _key(path, masks)
        if key in masks_by_key:
            skipped[str(path)] = f"another mask has the same stem ({masks_by_key[key].name})"
            continue
        masks_by_key[key] = path
    pairs: list[Pair] = []
    for key, image in sorted(by_key.items(), key=lambda kv: str(kv[1])):
        mask = masks_by_key.get(key)
        if mask is None:
            skipped[str(image)] = f"no mask named '{key}.*' in {masks}"
            continue
        pairs.append(Pair(image, mask))
    for key, mask in sorted(masks_by_key.items()):
        if key not in by_key and str(mask) not in skipped:
            skipped[str(mask)] = f"mask without an image named '{key}.*' in {images}"
    return pairs, skipped


def _image_size(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    problem = probe_image(path)
    if problem:
        return None, problem
    from PIL import Image

    with Image.open(path) as img:
        return img.size, None


def check_pair(pair: Pair, decoder: MaskDecoder) -> tuple[np.ndarray | None, str | None]:
    """Check one pair: readable image and mask, equal sizes, only known mask values.

    Returns:
        (labelled pixels per class, ``None``) for a usable pair, or (``None``, reason).
    """
    size, problem = _image_size(pair.image)
    if problem:
        return None, problem
    try:
        decoded = decoder.decode(pair.mask)
    except MaskError as exc:
        return None, f"mask {pair.mask.name}: {exc}"
    h, w = decoded.labels.shape
    if size != (w, h):
        assert size is not None
        return None, f"mask {pair.mask.name} is {w}x{h} but the image is {size[0]}x{size[1]}"
    if decoded.unknown:
        return None, f"{describe_unknown(decoded.unknown, decoder)} (mask {pair.mask.name})"
    labels = decoded.labels
    kept = labels[labels != decoder.ignore_index]
    return np.bincount(kept.reshape(-1), minlength=decoder.num_classes)[: decoder.num_classes], None


def resolve_layout(data: DataSection, root: Path) -> Layout:
    """The folders a recipe names (see docs/data.md for the split rules).

    Train images: ``data.images`` > the classes yaml's ``train.images`` > ``data.train``.
    Train masks: ``data.masks`` > the yaml's ``train.masks``. Validation (unless carved with
    ``val_last``/``val_split``): ``data.val_images`` (= ``data.val``) > yaml ``val.images`` >
    ``data.val`` left at its default, and ``data.val_masks`` > yaml ``val.masks``. Test:
    ``data.test`` with ``data.test_masks``. Recipe paths are relative to ``root``, yaml paths
    to the yaml's folder.

    The yaml's entries are used unless ``data.train``/``data.val`` name another folder than
    their defaults (``train``/``val``): a stored recipe lists every key with its value, so
    "was it written by the user" cannot be told from it, the value can.

    Raises:
        ConfigError: no mask folder for a split.
    """
    cyaml = read_classes_yaml(root / data.yaml) if data.yaml else None
    ysplits = cyaml.splits if cyaml else {}
    defaults = type(data).model_fields
    y_train = ysplits.get("train", (None, None))
    train_default = data.train == defaults["train"].default
    train_images = root / data.images if data.images else (y_train[0] if y_train[0] and train_default else root / data.train)
    train_masks = root / data.masks if data.masks else y_train[1]
    if train_masks is None:
        raise ConfigError("The masks format needs data.masks (the mask folder under data.root).", fix="e.g. data.masks: masks (or a classes yaml whose train: entry names masks)")
    test_images = root / data.test if data.test else None
    test_masks = root / data.test_masks if data.test_masks else None
    carving = data.val_last is not None or data.val_split is not None
    if carving:
        return Layout(train_images, train_masks, None, None, cyaml, test_images, test_masks)
    y_val = ysplits.get("val", (None, None))
    if data.val_images:
        val_images: Path | None = root / data.val_images
    elif y_val[0] and data.val == defaults["val"].default:
        val_images = y_val[0]
    elif data.val is not None:
        val_images = root / data.val
    else:
        val_images = None
    if val_images is None:
        raise ConfigError(
            "There is no validation set: data.val is null and neither data.val_split nor data.val_last is set.",
            fix="set data.val / data.val_images with data.val_masks, or data.val_last (e.g. 50), or data.val_split (e.g. 0.2)",
        )
    val_masks = root / data.val_masks if data.val_masks else y_val[1]
    if val_masks is None:
        raise ConfigError(
            f"The validation images '{val_images}' have no mask folder.",
            fix="set data.val_masks, or carve validation from train with data.val_last / data.val_split (and val: null)",
        )
    return Layout(train_images, train_masks, val_images, val_masks, cyaml, test_images, test_masks)


def carve(pairs: Sequence[Pair], val_last: int | None, val_split: float | None, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Split pairs into (train, val): the last ``val_last`` by file name, or a seeded random
    ``val_split`` fraction."""
    ordered = sorted(pairs, key=lambda p: p.image.name)
    if val_last is not None:
        if val_last >= len(ordered):
            raise DataError(f"data.val_last is {val_last} but only {len(ordered)} image/mask pairs were found.")
        return ordered[:-val_last], ordered[-val_last:]
    assert val_split is not None
    shuffled = list(ordered)
    random.Random(seed).shuffle(shuffled)
    n_val = max(1, round(len(shuffled) * val_split))
    if n_val >= len(shuffled):
        raise DataError(f"data.val_split {val_split} leaves no training images out of {len(shuffled)}.")
    val = set(id(p) for p in shuffled[:n_val])
    return [p for p in ordered if id(p) not in val], [p for p in ordered if id(p) in val]


def _infer_names(pairs: Sequence[Pair], ignore_index: int, skipped: dict[str, str]) -> list[str]:
    """Classes ``0..max`` of the values found in the masks (unreadable ones are skipped later)."""
    top = -1
    for pair in pairs:
        try:
            values = read_mask_values(pair.mask)
        except MaskError:
            continue
        found = values[values != ignore_index]
        if found.size:
            if int(found.min()) < 0:
                raise DataError(f"Mask '{pair.mask}' holds negative values.", fix="map them with data.value_map")
            top = max(top, int(found.max()))
    if top < 0:
        raise DataError("No labelled pixel in any mask (every value is ignore_index).", fix="check data.masks and data.ignore_index")
    if top > 1000:
        raise DataError(
            f"Mask values go up to {top}: these look like ids, not class indices 0..C-1.",
            fix="give data.value_map (stored value -> class index), or a classes yaml with data.yaml",
        )
    return [f"class_{i}" for i in range(top + 1)]


def _check_pairs(pairs: Sequence[Pair], decoder: MaskDecoder, skipped: dict[str, str]) -> tuple[list[Pair], list[int]]:
    """The usable pairs (the others join ``skipped``) and their labelled pixels per class."""
    usable: list[Pair] = []
    totals = np.zeros(decoder.num_classes, dtype=np.int64)
    for pair in pairs:
        counts, problem = check_pair(pair, decoder)
        if problem:
            skipped[str(pair.image)] = problem
            continue
        assert counts is not None
        totals += counts
        usable.append(pair)
    return usable, totals.tolist()


def _nothing_usable(split: str, skipped: dict[str, str]) -> DataError:
    return DataError(
        f"No usable {split} image/mask pairs ({len(skipped)} file(s) skipped; first: "
        + "; ".join(f"{Path(p).name}: {r}" for p, r in list(skipped.items())[:3]) + ").",
        fix="check the folders, data.value_map / data.class_names / data.mask_colors and data.ignore_index",
    )


def _carved_note(data: DataSection, n_val: int, n_pool: int) -> str:
    """How validation was carved, in words (for ``eval`` and the report)."""
    if data.val_last is not None:
        return f"the last {n_val} of {n_pool} training image/mask pairs by file name (data.val_last: {data.val_last})"
    return f"a seeded random {n_val} of {n_pool} training image/mask pairs (data.val_split: {data.val_split}, split_seed: {data.split_seed})"


def scan_dataset(data: DataSection, data_root: Path) -> ScanResult:
    """Pair, split, limit and check a masks dataset as the recipe describes it.

    The test split (``data.test``/``data.test_masks``) is paired and checked too; its classes
    are the training split's (classes inferred from mask values come from train and val only).

    Raises:
        ConfigError: inconsistent recipe options.
        DataError: missing folders, or nothing usable left in a split.
    """
    root = resolve_data_path(data.root, data_root)
    layout = resolve_layout(data, root)
    train, skipped = pair_folder(layout.train_images, layout.train_masks)
    carved: dict[str, str] = {}
    if layout.val_images is not None and layout.val_masks is not None:
        val, val_skipped = pair_folder(layout.val_images, layout.val_masks)
        skipped.update(val_skipped)
    else:
        if not train:
            raise DataError(f"No image/mask pairs in '{layout.train_images}' and '{layout.train_masks}' ({len(skipped)} file(s) skipped).")
        pool = len(train)
        train, val = carve(train, data.val_last, data.val_split, data.split_seed)
        carved["val"] = _carved_note(data, len(val), pool)
    test: list[Pair] = []
    if layout.test_images is not None and layout.test_masks is not None:
        test, test_skipped = pair_folder(layout.test_images, layout.test_masks)
        skipped.update(test_skipped)
    if data.limit is not None:
        train, val, test = train[: data.limit], val[: data.limit], test[: data.limit]
    spec = class_spec(data.class_names, data.value_map, data.mask_colors, data.ignore_index, layout.classes_yaml)
    names = spec.names if spec.names is not None else _infer_names([*train, *val], data.ignore_index, skipped)
    check_ignore_index(names, data.ignore_index)
    decoder = MaskDecoder(len(names), data.ignore_index, spec.value_map, spec.colors)
    result = ScanResult(names, decoder, spec, [], [], skipped, {}, layout)
    splits = {"train": train, "val": val, **({"test": test} if layout.test_images is not None else {})}
    for split, pairs in splits.items():
        usable, result.pixels[split] = _check_pairs(pairs, decoder, skipped)
        setattr(result, split, usable)
        if not usable:
            raise _nothing_usable(split, skipped)
    roots = {"train": layout.train_images, "val": layout.val_images or layout.train_images}
    labels: dict[str, Path | None] = {"train": layout.train_masks, "val": layout.val_masks or layout.train_masks}
    if layout.test_images is not None:
        roots["test"], labels["test"] = layout.test_images, layout.test_masks
    result.provenance = provenance(
        data_root,
        {split: [p.image for p in getattr(result, split)] for split in splits},
        roots,
        labels,
        carved,
    )
    return result


def scan_test(data: DataSection, data_root: Path, class_names: Sequence[str]) -> ScanResult:
    """Pair and check only the test split (``data.test``/``data.test_masks``) for a trained
    model whose classes are ``class_names`` (``visiontl eval --images DIR --masks DIR``).

    The recipe's class settings (value map, colours, classes yaml, ignore index) decode the
    masks exactly as in training; the training and validation folders are not read.

    Raises:
        ConfigError: no test split in the recipe.
        DataError: missing folders, or no usable pair.
    """
    if not data.test or not data.test_masks:
        raise ConfigError("No test split to score: data.test and data.test_masks name the test images and masks.",
                          fix="set data.test and data.test_masks, or use: visiontl eval RUN --images DIR --masks DIR")
    root = resolve_data_path(data.root, data_root, must_exist=False)
    images, masks = root / data.test, root / data.test_masks
    cyaml = read_classes_yaml(root / data.yaml) if data.yaml else None
    pairs, skipped = pair_folder(images, masks)
    if data.limit is not None:
        pairs = pairs[: data.limit]
    spec = class_spec(data.class_names or list(class_names), data.value_map, data.mask_colors, data.ignore_index, cyaml)
    names = list(class_names)
    decoder = MaskDecoder(len(names), data.ignore_index, spec.value_map, spec.colors)
    layout = Layout(images, masks, None, None, cyaml, images, masks)
    result = ScanResult(names, decoder, spec, [], [], skipped, {}, layout)
    result.test, result.pixels["test"] = _check_pairs(pairs, decoder, skipped)
    if not result.test:
        raise _nothing_usable("test", skipped)
    result.provenance = provenance(data_root, {"test": [p.image for p in result.test]}, {"test": images}, {"test": masks})
    return result
