"""Class names and value maps for semantic masks.

Where the classes come from, first match wins:

1. ``data.value_map`` (stored value -> class index or ``ignore_index``): the classes are
   ``0..C-1`` with ``C`` = the largest class index + 1; names from ``data.class_names``, else
   the classes yaml's name of the first stored id mapped to each index, else ``class_<i>``.
2. a classes yaml (``data.yaml``, e.g. coco128's ``semantic/classes.yaml``): its ``classes:``
   ``{stored id: name}`` become classes ``0..C-1`` in id order, except ids named ``unlabeled``,
   ``unlabelled``, ``void`` or ``ignore``, which map to ``ignore_index``.
3. ``data.mask_colors``: one class per colour; names from ``data.class_names`` or ``class_<i>``.
4. ``data.class_names``: stored values ``0..C-1`` are the classes (identity map).
5. nothing: the classes are ``0..max`` of the values found in the masks (``ignore_index``
   excluded), named ``class_<i>``; the report says they were inferred.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl.errors import ConfigError, DataError

#: Names that, in a classes yaml, mean "not a class": those ids map to ``ignore_index``.
IGNORE_NAMES = frozenset({"unlabeled", "unlabelled", "void", "ignore", "__ignore__"})


@dataclass(frozen=True)
class ClassesYaml:
    """A classes yaml: ``classes`` by stored id, and optional ``train``/``val`` folders.

    Attributes:
        path: the file.
        classes: stored id -> name.
        splits: ``train``/``val`` -> (images folder, masks folder), absolute.
    """

    path: Path
    classes: dict[int, str]
    splits: dict[str, tuple[Path | None, Path | None]] = field(default_factory=dict)


def read_classes_yaml(path: Path) -> ClassesYaml:
    """Read a classes yaml::

        train: {images: ../images/train2017, masks: masks/train2017}   # optional
        val: {images: ../images/val2017, masks: masks/val2017}         # optional
        classes: {0: unlabeled, 1: person, 2: bicycle, ...}              # or a list of names

    Folder paths are relative to the yaml's own folder.

    Raises:
        DataError: missing or malformed file.
    """
    import yaml

    if not path.is_file():
        raise DataError(f"Classes yaml '{path}' does not exist.", fix="check data.root and data.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(f"Classes yaml '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or "classes" not in raw and "names" not in raw:
        raise DataError(f"Classes yaml '{path}' has no 'classes:' (or 'names:') entry.", fix="add classes: {id: name, ...}")
    names = raw.get("classes", raw.get("names"))
    if isinstance(names, list):
        classes = {i: str(n) for i, n in enumerate(names)}
    elif isinstance(names, dict):
        try:
            classes = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DataError(f"Classes yaml '{path}': class ids must be integers.") from None
    else:
        raise DataError(f"Classes yaml '{path}': 'classes' must be a list or an {{id: name}} mapping.")
    splits: dict[str, tuple[Path | None, Path | None]] = {}
    for split in ("train", "val"):
        entry = raw.get(split)
        if isinstance(entry, dict):
            images = entry.get("images")
            masks = entry.get("masks")
            splits[split] = (
                (path.parent / str(images)).resolve() if images else None,
                (path.parent / str(masks)).resolve() if masks else None,
            )
    return ClassesYaml(path, dict(sorted(classes.items())), splits)


@dataclass(frozen=True)
class ClassSpec:
    """The classes of a dataset and how stored mask values reach them.

    Attributes:
        names: class names in label order (``None``: infer from the masks).
        value_map: stored value -> class index or ``ignore_index`` (``None``: identity).
        colors: RGB colour per class for colour-coded masks.
        source: where the classes came from, for the report.
    """

    names: list[str] | None
    value_map: dict[int, int] | None
    colors: list[tuple[int, int, int]] | None
    source: str


def _check_names(given: Sequence[str] | None, count: int, what: str) -> list[str] | None:
    if given is None:
        return None
    if len(given) != count:
        raise ConfigError(f"data.class_names has {len(given)} names but {what} defines {count} classes.", fix="give one name per class")
    return list(given)


def class_spec(
    class_names: Sequence[str] | None,
    value_map: Mapping[int, int] | None,
    mask_colors: Sequence[Sequence[int]] | None,
    ignore_index: int,
    classes_yaml: ClassesYaml | None,
) -> ClassSpec:
    """Resolve the recipe's class options (see the module docstring for the order).

    Raises:
        ConfigError: inconsistent options (a value map to a negative class, names of the wrong
            length, colours given twice, ignore_index inside the classes).
    """
    if mask_colors is not None and value_map is not None:
        raise ConfigError("data.mask_colors and data.value_map both given.", fix="colour masks use mask_colors; index masks use value_map")
    if value_map is not None:
        targets = sorted({int(v) for v in value_map.values() if int(v) != ignore_index})
        if not targets:
            raise ConfigError("data.value_map maps every value to ignore_index: no class is left.")
        if targets[0] < 0:
            raise ConfigError(f"data.value_map maps to class {targets[0]}; classes are 0..C-1 (or ignore_index {ignore_index}).")
        count = targets[-1] + 1
        names = _check_names(class_names, count, "data.value_map")
        if names is None:
            yaml_names = classes_yaml.classes if classes_yaml else {}
            first: dict[int, str] = {}
            for stored, label in sorted(value_map.items()):
                if label != ignore_index and stored in yaml_names:
                    first.setdefault(int(label), yaml_names[stored])
            names = [first.get(i, f"class_{i}") for i in range(count)]
        return ClassSpec(names, {int(k): int(v) for k, v in value_map.items()}, None, "data.value_map")
    if classes_yaml is not None:
        kept = [(i, n) for i, n in classes_yaml.classes.items() if n.strip().lower() not in IGNORE_NAMES]
        if not kept:
            raise DataError(f"Classes yaml '{classes_yaml.path}' names no class besides ignored ones.")
        vmap = {i: index for index, (i, _) in enumerate(kept)}
        for i, n in classes_yaml.classes.items():
            if n.strip().lower() in IGNORE_NAMES:
                vmap[i] = ignore_index
        names = _check_names(class_names, len(kept), f"'{classes_yaml.path.name}'") or [n for _, n in kept]
        identity = all(stored == label for stored, label in vmap.items() if label != ignore_index) and len(vmap) == len(kept)
        return ClassSpec(names, None if identity else vmap, None, f"classes yaml {classes_yaml.path.name}")
    if mask_colors is not None:
        colors = [tuple(int(c) for c in rgb) for rgb in mask_colors]
        if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colors):
            raise ConfigError("data.mask_colors must be [r, g, b] triples in 0..255.")
        if len(set(colors)) != len(colors):
            raise ConfigError("data.mask_colors lists a colour twice.")
        names = _check_names(class_names, len(colors), "data.mask_colors") or [f"class_{i}" for i in range(len(colors))]
        return ClassSpec(names, None, colors, "data.mask_colors")  # type: ignore[arg-type]
    if class_names is not None:
        return ClassSpec(list(class_names), None, None, "data.class_names")
    return ClassSpec(None, None, None, "inferred from the mask values")


def check_ignore_index(names: Sequence[str], ignore_index: int) -> None:
    """``ignore_index`` must not be a class index.

    Raises:
        ConfigError: it is.
    """
    if 0 <= ignore_index < len(names):
        raise ConfigError(
            f"data.ignore_index {ignore_index} is the index of class '{names[ignore_index]}'.",
            fix="use a value outside 0..C-1 (default 255), and map the stored value to it with data.value_map",
        )


def summary(spec: ClassSpec, names: Sequence[str]) -> dict[str, Any]:
    """What the report records about the classes."""
    out: dict[str, Any] = {"classes_from": spec.source, "num_classes": len(names)}
    if spec.value_map is not None:
        out["value_map"] = {str(k): v for k, v in sorted(spec.value_map.items())}
    if spec.colors is not None:
        out["mask_colors"] = [list(c) for c in spec.colors]
    return out
