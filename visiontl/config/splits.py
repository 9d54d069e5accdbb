"""Which ``data`` keys define the train, validation and test splits, and which go together.

The rules are one table in docs/data.md; this module enforces the part of it that needs no
file: a recipe whose keys contradict each other (two ways to get a validation split, a key the
format never reads, a test split that is also the validation split) is refused with one
message naming the keys, instead of one key silently winning. The schema calls
:func:`check_split_keys` on every ``data`` section, so ``config validate``, ``run`` and the
``--set`` overrides of ``eval`` all refuse the same things.

Example:
    >>> from visiontl.config.loader import validate_recipe
    >>> data = {"format": "masks", "root": "d", "images": "i", "masks": "m", "val_last": 20, "val_images": "t"}
    >>> validate_recipe({"data": data, "model": {"id": "timm:resnet18"}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    visiontl.errors.ConfigError: Recipe ... data: val_last carves the validation split out of train, so val_images would be ignored: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.config.schema import DataSection

#: The split keys each built-in format reads (``train``/``val`` are always there with their
#: defaults and are checked separately). A format a plugin adds is not checked here.
FORMAT_KEYS: dict[str, frozenset[str]] = {
    "imagefolder": frozenset({"test"}),
    "csv": frozenset({"test", "image_root"}),
    "coco": frozenset({"images", "val_images", "test", "test_images"}),
    "yolo": frozenset({"yaml", "test"}),
    "masks": frozenset({"images", "masks", "val_images", "val_masks", "test", "test_masks", "yaml"}),
}

#: What each optional key is, for the messages.
_MEANING = {
    "images": "the image folder of formats masks and coco",
    "masks": "the training mask folder of format masks",
    "val_images": "the validation image folder of formats masks and coco",
    "val_masks": "the validation mask folder of format masks",
    "test_images": "the test JSON's image folder of format coco",
    "test_masks": "the test mask folder of format masks",
    "yaml": "the data yaml of format yolo, or the classes yaml of format masks",
    "image_root": "the folder CSV paths are relative to, for format csv",
}


def _same(a: str | None, b: str | None) -> bool:
    """Two recipe paths that name the same place (``val``, ``./val/``)."""
    if not a or not b:
        return False

    def norm(p: str) -> str:
        return p.strip().removeprefix("./").rstrip("/\\")

    return norm(a) == norm(b)


def check_split_keys(data: DataSection) -> None:
    """Refuse contradictory split keys; normalise the ones that only restate a default.

    Normalisation (so that a stored recipe, which lists every key, reads back the same):
    carving validation (``val_split``/``val_last``) sets ``val`` to null, and for the masks
    format ``val_images`` fills a ``val`` that was not given (both name the validation image
    folder).

    Raises:
        ValueError: the first contradiction found, naming the keys and what to do (pydantic
            reports it at ``data``; the loader turns it into a ConfigError).
    """
    given = data.model_fields_set
    carving = data.val_split is not None or data.val_last is not None
    carve_key = "val_split" if data.val_split is not None else "val_last"
    if data.val_split is not None and data.val_last is not None:
        raise ValueError("give val_split or val_last, not both")
    if carving and "val" in given and data.val is not None:
        raise ValueError("val names a validation split and val_split/val_last carves one from train: choose one (set val: null)")
    separate = [k for k in ("val_images", "val_masks") if getattr(data, k)]
    if carving and separate:
        raise ValueError(
            f"{carve_key} carves the validation split out of train, so {' and '.join(separate)} would be ignored: "
            f"keep {carve_key} (and remove {'/'.join(separate)}), or remove {carve_key} and name the validation folders "
            "(to score other folders with a trained run: visiontl eval RUN --images DIR --masks DIR)"
        )
    if carving:
        data.__dict__["val"] = None  # carving replaces the default 'val' split
    known = FORMAT_KEYS.get(data.format)
    if known is None:
        return  # a plugin's format: its task reads what it reads
    unused = [k for k in _MEANING if getattr(data, k, None) and k not in known]
    if unused:
        key = unused[0]
        raise ValueError(
            f"{key} is not read by format '{data.format}' ({key} is {_MEANING[key]}): remove it "
            f"(format '{data.format}' reads: {', '.join(sorted(known | {'train', 'val', 'val_split', 'val_last'}))})"
        )
    if data.format == "masks":
        _check_masks(data, given)
    for key in ("test_images", "test_masks"):
        if getattr(data, key) and not data.test:
            raise ValueError(f"{key} belongs to a test split, but data.test is not set: set test (the test split) or remove {key}")
    if data.test:
        _check_test(data)


def _check_masks(data: DataSection, given: set[str]) -> None:
    """Masks format: ``val`` and ``val_images`` both name the validation image folder."""
    if data.val_images and "val" in given and data.val is not None and not _same(data.val, data.val_images):
        raise ValueError(
            f"val ('{data.val}') and val_images ('{data.val_images}') both name the validation image folder "
            "of format 'masks', and differ: keep one (val_images with val_masks, or val with val_masks)"
        )
    if data.val_images and "val" not in given:
        data.__dict__["val"] = data.val_images  # one folder, whichever key named it
    if data.test and not data.test_masks:
        raise ValueError("test names the test image folder of format 'masks' and needs its masks: set test_masks")


def _check_test(data: DataSection) -> None:
    """The test split is neither the training nor the validation split."""
    test = data.test
    if data.format == "yolo":
        # data.test names the yaml's entry (e.g. 'test') or a folder as the yaml writes them.
        same_as = next((k for k in ("train", "val") if _same(test, k)), None)
    else:
        train = data.images if data.format == "masks" and data.images else data.train
        val = data.val_images if data.format == "masks" and data.val_images else data.val
        same_as = "train" if _same(test, train) else "val" if _same(test, val) else None
    if same_as:
        raise ValueError(
            f"test ('{test}') is the {same_as} split: a test split must be images the run never trains on "
            "nor picks its best epoch with; name a held-out split, or remove test"
        )


#: The keys that say where splits are, cleared by :func:`without_splits` (``train`` and
#: ``yaml`` stay: ``train`` always has a value, and ``yaml`` may carry a masks format's classes).
SPLIT_KEYS = ("val", "val_split", "val_last", "images", "masks", "val_images", "val_masks",
              "test", "test_images", "test_masks", "image_root", "limit")


def without_splits(data: dict[str, object]) -> dict[str, object]:
    """A copy of a ``data`` dict with every split key (:data:`SPLIT_KEYS`) cleared, its class
    and size settings kept: the base for scoring explicit folders.

    Example:
        >>> without_splits({"root": "d", "val_last": 20, "class_names": ["a", "b"]})["val_last"] is None
        True
    """
    return {**data, **{key: None for key in SPLIT_KEYS}}
