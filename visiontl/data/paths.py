"""Where a recipe's dataset path points, and a fingerprint of the files a run used.

One resolver serves every task family (classification, detection, segmentation), so a
``data.root`` means the same thing whatever the task. The order, which ``docs/data.md``
quotes:

1. An absolute path (``~`` expanded) is used as given.
2. A relative path is looked up under the data root: ``$VISIONTL_DATA_DIR``, default
   ``./data`` (or the ``data_root`` the Python API was given).
3. If it is not there, it is looked up relative to the working directory.

When both the data-root and the working-directory candidates exist and are different
folders, the data root's is used and a warning names both. When neither exists the run
stops with a :class:`~visiontl.errors.DataError` that lists every place tried.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from visiontl import log
from visiontl.errors import DataError

#: The fix every "dataset not found" error offers.
NOT_FOUND_FIX = (
    "set data.root to an existing folder (an absolute path, or a path relative to the data root), "
    "or point $VISIONTL_DATA_DIR at the folder that holds it"
)


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def resolve_data_path(
    path: str | Path,
    data_root: Path | None = None,
    *,
    what: str = "data.root",
    must_exist: bool = True,
) -> Path:
    """Resolve a recipe's dataset path, in the one documented order.

    Order: an absolute path as given (``~`` expanded); else relative to the data root
    (``data_root``, which callers take from ``$VISIONTL_DATA_DIR``, default ``./data``); else
    relative to the working directory. When the data-root and the working-directory
    candidates both exist and differ, the data root's wins and a warning names both.

    Args:
        path: the path as the recipe gives it.
        data_root: the data root; ``None`` reads ``$VISIONTL_DATA_DIR`` (default ``./data``).
        what: the recipe key, for messages (``data.root``, ``data.image_root``).
        must_exist: raise when nothing exists; with ``False`` a missing relative path
            resolves to its place under the data root (where ``data.synthesize`` creates it).

    Returns:
        The absolute, resolved path.

    Raises:
        DataError: ``must_exist`` and no candidate exists; the message lists every place tried.

    Example:
        >>> resolve_data_path("/tmp", must_exist=False).is_absolute()
        True
    """
    given = Path(path).expanduser()
    if given.is_absolute():
        if must_exist and not given.exists():
            raise DataError(f"Dataset '{path}' not found: {what} is an absolute path and {given} does not exist.", fix=NOT_FOUND_FIX)
        return given.resolve()
    if data_root is None:
        from visiontl import env

        data_root = env.data_root()
    root = Path(data_root).expanduser().absolute()
    in_root = root / given
    in_cwd = Path.cwd() / given
    root_ok, cwd_ok = in_root.exists(), in_cwd.exists()
    if root_ok:
        if cwd_ok and not _same(in_root, in_cwd):
            log.warning(
                f"{what} '{path}' exists both under the data root ({in_root.resolve()}) and in the working "
                f"directory ({in_cwd.resolve()}); using the data root's. Give an absolute path to use the other."
            )
        return in_root.resolve()
    if cwd_ok:
        return in_cwd.resolve()
    if not must_exist:
        return in_root.resolve()
    raise DataError(
        f"Dataset '{path}' not found ({what}). Looked in: {in_root} (under the data root {root}), "
        f"then {in_cwd} (under the working directory).",
        fix=NOT_FOUND_FIX,
    )


# --------------------------------------------------------------------------- provenance


def _relative(file: Path, root: Path) -> str:
    absolute = Path(os.path.abspath(file))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        pass
    try:  # the root or the file reached through a symlink
        return absolute.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


def common_root(files: Sequence[Path]) -> Path | None:
    """The deepest folder that holds every file (``None`` for no files)."""
    if not files:
        return None
    return Path(os.path.commonpath([os.path.abspath(Path(f).parent) for f in files]))


def dataset_fingerprint(root: Path, files: Sequence[Path]) -> dict[str, Any]:
    """Identify a split by its files: ``{"path", "files", "sha256"}``.

    ``sha256`` hashes the sorted list of the files' paths relative to ``root`` (POSIX
    separators, joined by newlines; a file outside ``root`` enters with its absolute path),
    so the same dataset moved to another folder or machine keeps its hash, and adding,
    removing or renaming a file changes it. File contents are not read.

    Args:
        root: the split's folder.
        files: the files the split uses (images).

    Returns:
        ``{"path": absolute root, "files": len(files), "sha256": hex digest}``.

    Example:
        >>> fp = dataset_fingerprint(Path("/d"), [Path("/d/b/2.png"), Path("/d/a/1.png")])
        >>> fp["files"], fp["sha256"] == dataset_fingerprint(Path("/e"), [Path("/e/a/1.png"), Path("/e/b/2.png")])["sha256"]
        (2, True)
    """
    base = Path(os.path.abspath(root))
    names = sorted(_relative(Path(f), base) for f in files)
    digest = hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()
    return {"path": str(base), "files": len(names), "sha256": digest}


def provenance(
    data_root: Path | None,
    splits: Mapping[str, Sequence[Path]],
    roots: Mapping[str, Path] | None = None,
    labels: Mapping[str, Path | None] | None = None,
    carved: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``DataInfo.provenance``: the data root and a fingerprint of each split's files.

    Args:
        data_root: the data root relative dataset paths were resolved against (``None``:
            ``$VISIONTL_DATA_DIR``, default ``./data``).
        splits: split name -> the image files it uses.
        roots: split name -> its folder; by default the deepest folder holding its files.
        labels: split name -> where its labels are (mask folder, annotation file, CSV), for
            the lines ``eval`` prints; splits whose labels are in their folders are left out.
        carved: split name -> how it was carved from another split ("the last 20 training
            images by file name (data.val_last)").

    Returns:
        ``{"data_root": abs path, "splits": {split: {"path": abs path, "files": N,
        "sha256": hash of the sorted relative file list[, "labels": abs path][, "carved":
        how]}}}`` (see :func:`dataset_fingerprint`).
    """
    if data_root is None:
        from visiontl import env

        data_root = env.data_root()
    roots = roots or {}
    out: dict[str, Any] = {}
    for split, files in splits.items():
        root = roots.get(split) or common_root(files) or Path(data_root)
        out[split] = dataset_fingerprint(root, list(files))
        where = (labels or {}).get(split)
        if where is not None:
            out[split]["labels"] = os.path.abspath(where)
        if (carved or {}).get(split):
            out[split]["carved"] = (carved or {})[split]
    return {"data_root": str(Path(os.path.abspath(Path(data_root).expanduser()))), "splits": out}
