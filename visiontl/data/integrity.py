"""Honest accounting: a file reported as skipped is never also counted as used.

Scanning checks every file's header (and, for JPEG and PNG, that the file is whole), so what
it skips is never in ``DataInfo.counts``. A file can still fail only when decoded, during
training or evaluation; :func:`without_files` takes such files out of the counts again before
a summary reports them next to the skipped list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.tasks.base import DataInfo


def _kept(items: Sequence[Any], attr: str, skipped: Mapping[str, str]) -> list[Any]:
    return [it for it in items if str(getattr(it, attr)) not in skipped]


def without_files(info: DataInfo, skipped: Mapping[str, str]) -> DataInfo:
    """``info`` with the items of ``skipped`` files taken out of its counts.

    Knows the built-in tasks' ``extras``: classification (``train_samples``/``val_samples``:
    images per class), detection (``train_records``/``val_records``: objects per class and
    ``extras["images"]``) and segmentation (``scan``: images). Other tasks' counts are kept
    as they are. Nothing is mutated: the datasets built from ``info`` are unchanged.

    Args:
        info: what inspecting the dataset found.
        skipped: path -> reason for files found unreadable later (``TrainResult.skipped``).

    Returns:
        A copy whose ``counts`` (and detection's ``extras["images"]``) leave those files out
        and whose ``skipped`` lists them too.
    """
    merged = {**info.skipped, **skipped}
    if not skipped:
        return dataclasses.replace(info, skipped=merged)
    extras = info.extras
    counts = {split: dict(c) for split, c in info.counts.items()}
    new_extras = extras
    if "train_samples" in extras:
        from visiontl.data.classification import count_per_class

        for split in counts:
            samples = extras.get(f"{split}_samples")
            if samples is not None:
                counts[split] = count_per_class(_kept(samples, "path", skipped), info.class_names)
    elif "train_records" in extras:
        from visiontl.data.detection.records import class_counts

        images = dict(extras.get("images") or {})
        for split in counts:
            records = extras.get(f"{split}_records")
            if records is not None:
                kept = _kept(records, "path", skipped)
                counts[split] = class_counts(kept, info.class_names)
                images[split] = len(kept)
        new_extras = {**extras, "images": images}
    elif "scan" in extras and hasattr(extras["scan"], "train"):
        scan = extras["scan"]
        for split in counts:
            pairs = getattr(scan, split, None)
            if pairs is not None and "images" in counts[split]:
                counts[split]["images"] = len(_kept(pairs, "image", skipped))
    return dataclasses.replace(info, counts=counts, skipped=merged, extras=new_extras)
