"""Train/validation splits of detection records: separate files, the last N, or a fraction."""

from __future__ import annotations

import random
from collections.abc import Sequence

from visiontl.data.detection.records import DetectionRecord
from visiontl.errors import DataError


def by_name(records: Sequence[DetectionRecord]) -> list[DetectionRecord]:
    """Records sorted by file name (then full path, for identical names in two folders)."""
    return sorted(records, key=lambda r: (r.path.name, str(r.path)))


def hold_out_last(records: Sequence[DetectionRecord], count: int) -> tuple[list[DetectionRecord], list[DetectionRecord]]:
    """The last ``count`` images by file name as validation, the rest as training.

    Raises:
        DataError: ``count`` leaves no training image.
    """
    ordered = by_name(records)
    if count >= len(ordered):
        raise DataError(
            f"data.val_last is {count} but the training split has only {len(ordered)} usable images.",
            fix=f"set data.val_last below {len(ordered)}",
        )
    return ordered[:-count], ordered[-count:]


def random_split(records: Sequence[DetectionRecord], fraction: float, seed: int) -> tuple[list[DetectionRecord], list[DetectionRecord]]:
    """A seeded random ``fraction`` of the images as validation (at least one), both sorted.

    Raises:
        DataError: fewer than two images to split.
    """
    ordered = by_name(records)
    if len(ordered) < 2:
        raise DataError(f"data.val_split needs at least 2 training images; found {len(ordered)}.")
    indices = list(range(len(ordered)))
    random.Random(seed).shuffle(indices)
    n_val = min(len(ordered) - 1, max(1, round(len(ordered) * fraction)))
    val = set(indices[:n_val])
    return [r for i, r in enumerate(ordered) if i not in val], [r for i, r in enumerate(ordered) if i in val]


def limit(records: Sequence[DetectionRecord], count: int | None) -> list[DetectionRecord]:
    """The first ``count`` records (file-name order), for smoke runs; all when ``None``."""
    ordered = by_name(records)
    return ordered if count is None else ordered[:count]
