"""From a recipe's ``data`` section to train and validation records (no model, no torch).

* ``format: coco``: ``train``/``val`` name COCO JSON files under ``root``; ``images`` is the
  folder their ``file_name`` entries are relative to (default: the JSON's folder), and
  ``val_images`` the validation one when separate.
* ``format: yolo``: ``yaml`` names the data yaml under ``root``; its ``train``/``val``
  entries name the splits (a relative ``path:`` is resolved against the yaml's folder).
* Without a validation split: ``val_last: N`` holds out the last N images by file name,
  ``val_split: f`` a seeded random fraction.
* A test split (``data.test``): a COCO JSON (images under ``test_images``, default ``images``
  or the JSON's folder), or the data yaml's entry of that name (yolo, e.g. ``test``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl import log
from visiontl.data.detection import records as R
from visiontl.data.detection import split as S
from visiontl.data.detection.records import DetectionRecord, LabelProblems
from visiontl.data.paths import provenance, resolve_data_path
from visiontl.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.config.schema import DataSection

FORMATS = ("coco", "yolo")


@dataclass
class DetectionScan:
    """Class names, both splits, and every label problem found.

    Attributes:
        class_names: class names in label order.
        train, val: the records of each split; test: the test split's (``None`` without one).
        problems: what was left out (``entries``, the run's skipped list) and what was fixed
            and kept (``kept``, counted by kind in ``kinds``).
        extras: format facts; ``extras["kept"]`` counts the kept notes by kind.
        provenance: ``DataInfo.provenance`` (see :func:`visiontl.data.paths.provenance`).
    """

    class_names: list[str]
    train: list[DetectionRecord]
    val: list[DetectionRecord]
    problems: LabelProblems = field(default_factory=LabelProblems)
    extras: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    test: list[DetectionRecord] | None = None
    #: where each split's labels are and how validation was carved (for the provenance)
    labels: dict[str, Path] = field(default_factory=dict)
    carved: dict[str, str] = field(default_factory=dict)


def _root(data: DataSection, data_root: Path) -> Path:
    return resolve_data_path(data.root, data_root)


def _carve(data: DataSection, records: list[DetectionRecord], what: str) -> tuple[list[DetectionRecord], list[DetectionRecord]]:
    if data.val_last is not None:
        return S.hold_out_last(records, data.val_last)
    if data.val_split is not None:
        return S.random_split(records, data.val_split, data.split_seed)
    raise ConfigError(
        f"There is no validation set: {what} and neither data.val_split nor data.val_last is set.",
        fix="name a validation split, or set data.val_last (e.g. 50) or data.val_split (e.g. 0.2)",
    )


def _carved_note(data: DataSection, n_val: int, n_pool: int) -> str:
    if data.val_last is not None:
        return f"the last {n_val} of {n_pool} training images by file name (data.val_last: {data.val_last})"
    return f"a seeded random {n_val} of {n_pool} training images (data.val_split: {data.val_split}, split_seed: {data.split_seed})"


def _scan_coco(data: DataSection, root: Path) -> DetectionScan:
    from visiontl.data.detection.coco import read_coco

    images = root / data.images if data.images else None
    train = read_coco(root / data.train, images, data.class_names)
    problems = LabelProblems()
    problems.update(train.problems)
    labels = {"train": root / data.train}
    carved: dict[str, str] = {}
    if data.val:
        val_images = root / data.val_images if data.val_images else images
        val = read_coco(root / data.val, val_images, train.class_names)
        problems.update(val.problems)
        train_records, val_records = train.records, val.records
        labels["val"] = root / data.val
    else:
        train_records, val_records = _carve(data, train.records, "data.val is null")
        labels["val"] = root / data.train
        carved["val"] = _carved_note(data, len(val_records), len(train.records))
    test = None
    if data.test:
        test_images = root / data.test_images if data.test_images else images
        found = read_coco(root / data.test, test_images, train.class_names)
        problems.update(found.problems)
        test, labels["test"] = found.records, root / data.test
    return DetectionScan(
        train.class_names,
        train_records,
        val_records,
        problems,
        {"format": "coco", "category_map": train.category_map.as_dict(), "annotation_file": str(root / data.train)},
        test=test,
        labels=labels,
        carved=carved,
    )


def _scan_yolo(data: DataSection, root: Path) -> DetectionScan:
    from visiontl.data.detection.yolo import read_yolo

    if not data.yaml:
        raise ConfigError(
            "data.format 'yolo' needs data.yaml: the YOLO data yaml under data.root.",
            fix="set data.yaml, e.g. data.yaml: data.yaml",
        )
    yaml_path = root / data.yaml
    found = read_yolo(yaml_path, test=data.test)
    if data.class_names and list(data.class_names) != found.class_names:
        raise ConfigError(
            f"data.class_names {list(data.class_names)[:5]}... differ from the names in '{yaml_path}' {found.class_names[:5]}...",
            fix="leave data.class_names out for YOLO data (the yaml's names are the class order)",
        )
    carving = data.val_last is not None or data.val_split is not None
    if "val" in found.splits and carving:
        raise ConfigError(
            f"'{yaml_path}' names a val split and data.val_last/val_split carves one from train: choose one.",
            fix="remove data.val_last/val_split, or the yaml's val entry",
        )
    carved: dict[str, str] = {}
    if "val" in found.splits:
        train_records, val_records = found.splits["train"], found.splits["val"]
    else:
        train_records, val_records = _carve(data, found.splits["train"], f"'{yaml_path}' has no val entry")
        carved["val"] = _carved_note(data, len(val_records), len(found.splits["train"]))
    return DetectionScan(
        found.class_names,
        train_records,
        val_records,
        found.problems,
        {"format": "yolo", "data_yaml": str(yaml_path), "yolo_root": str(found.root)},
        test=found.splits.get("test"),
        # YOLO labels sit beside the images (images/ -> labels/): the folder says where.
        carved=carved,
    )


def _check_segmentation(records: Sequence[DetectionRecord], problems: LabelProblems) -> None:
    for record in records:
        for i in range(len(record)):
            if not record.object_has_mask(i):
                problems.note(f"{record.path}:object {i + 1}", R.no_segmentation(), R.BOX_AS_MASK)


def scan_detection(data: DataSection, data_root: Path, masks: bool = False) -> DetectionScan:
    """Read a recipe's detection dataset into train and validation records.

    Args:
        data: the recipe's ``data`` section.
        data_root: the root relative dataset paths are resolved against.
        masks: instance segmentation (objects without a mask are reported).

    Raises:
        ConfigError: an unknown format, a missing ``yaml``, no way to get a validation set.
        DataError: missing files, malformed annotation files, nothing usable left.
    """
    if data.format not in FORMATS:
        from visiontl.ids import suggest

        close = suggest(data.format, FORMATS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"data.format '{data.format}' is not a detection format.{hint}",
            fix=f"use one of: {', '.join(FORMATS)}",
        )
    root = _root(data, data_root)
    scan = _scan_coco(data, root) if data.format == "coco" else _scan_yolo(data, root)
    scan.train = S.limit(scan.train, data.limit)
    scan.val = S.limit(scan.val, data.limit)
    if scan.test is not None:
        scan.test = S.limit(scan.test, data.limit)
    if masks:
        for records in (scan.train, scan.val, scan.test or []):
            _check_segmentation(records, scan.problems)
    _warn_kept(scan.problems)
    scan.extras["kept"] = scan.problems.kept_counts()
    n_problems = len(scan.problems)
    if not scan.train or not any(len(r) for r in scan.train):
        what = "images" if not scan.train else "objects"
        raise DataError(
            f"No usable training {what} in '{data.root}' ({n_problems} label problem(s) found"
            + (f", e.g. {next(iter(scan.problems.entries.items()))}" if n_problems else "")
            + ").",
            fix="check the label files and paths listed by: visiontl run RECIPE --dry-run",
        )
    if not scan.val or not any(int((r.iscrowd == 0).sum()) for r in scan.val):
        # mAP is undefined without a single object to find.
        what = "images" if not scan.val else "objects"
        raise DataError(
            f"No usable validation {what} in '{data.root}' ({n_problems} label problem(s) found): there is nothing to score.",
            fix="check the validation split (data.val, data.val_last, data.val_split, data.limit)",
        )
    _check_scorable(scan.test, "test", data, n_problems)
    scan.provenance = _provenance(scan, data_root)
    return scan


def _check_scorable(records: Sequence[DetectionRecord] | None, split: str, data: DataSection, n_problems: int) -> None:
    """A split to score needs an object (mAP is undefined without one); ``None``: no split."""
    if records is None:
        return
    if not records or not any(int((r.iscrowd == 0).sum()) for r in records):
        what = "images" if not records else "objects"
        raise DataError(
            f"No usable {split} {what} in '{data.root}' ({n_problems} label problem(s) found): there is nothing to score.",
            fix=f"check the {split} split (data.{split}, data.limit)",
        )


def _provenance(scan: DetectionScan, data_root: Path) -> dict[str, Any]:
    splits = {"train": scan.train, "val": scan.val, **({"test": scan.test} if scan.test is not None else {})}
    return provenance(
        data_root,
        {split: [r.path for r in records] for split, records in splits.items()},
        labels={split: scan.labels[split] for split in splits if split in scan.labels},
        carved=scan.carved,
    )


def scan_detection_test(data: DataSection, data_root: Path, class_names: Sequence[str], masks: bool = False) -> DetectionScan:
    """Only the test split (``data.test``) for a trained model whose classes are
    ``class_names``: a COCO JSON (categories matched by name), the data yaml's entry, or, for
    format yolo without a data yaml, an image folder whose labels are where YOLO keeps them.

    Raises:
        ConfigError: no test split in the recipe.
        DataError: missing files, or no object to score.
    """
    if not data.test:
        raise ConfigError("No test split to score: data.test is not set.",
                          fix="set data.test, or use: visiontl eval RUN --images DIR [--labels COCO_JSON]")
    root = resolve_data_path(data.root, data_root, must_exist=False)
    problems = LabelProblems()
    if data.format == "coco":
        from visiontl.data.detection.coco import read_coco

        images = root / data.test_images if data.test_images else (root / data.images if data.images else None)
        found = read_coco(root / data.test, images, class_names)
        problems.update(found.problems)
        records, labels = found.records, root / data.test
    elif data.yaml:
        from visiontl.data.detection.yolo import read_yolo

        yolo = read_yolo(root / data.yaml, splits=(), test=data.test)
        if yolo.class_names != list(class_names):
            raise DataError(f"'{root / data.yaml}' names the classes {yolo.class_names[:5]}..., the model {list(class_names)[:5]}...",
                            fix="score data whose yaml lists the model's classes in its order")
        problems.update(yolo.problems)
        records, labels = yolo.splits["test"], root / data.yaml
    else:
        from visiontl.data.detection.yolo import read_yolo_folder

        records = read_yolo_folder(root / data.test, class_names, problems)
        labels = None
    scan = DetectionScan(list(class_names), [], [], problems, {"format": data.format}, test=S.limit(records, data.limit))
    if masks:
        _check_segmentation(scan.test or [], problems)
    _warn_kept(problems)
    _check_scorable(scan.test, "test", data, len(problems))
    scan.provenance = provenance(data_root, {"test": [r.path for r in scan.test or []]}, labels={"test": labels} if labels else None)
    return scan


def _warn_kept(problems: LabelProblems) -> None:
    """One counted warning per kind of kept note ("3 boxes clipped to the image ...")."""
    for kind, places in problems.kinds.items():
        where = places[0]
        log.warning(f"{len(places)} {kind} (kept, not skipped), e.g. {where}: {problems.kept[where]}.")
