"""What ``visiontl predict`` and ``visiontl eval`` run when their target is an artefact.

The commands keep their arguments and their output; for an export (a ``*.export.json``, its
main file, or a folder of exports) they call these functions, which use only
:mod:`visiontl.deploy` (no torch) and print as the commands print for a run:

* ``predict``: ``path: class score, class score  -> overlay`` per image (``--json``: a list of
  ``{path, top, details, overlay, error}``), and an error when no image could be read;
* ``eval``: one ``metric: value`` line per scalar and the count of skipped files (``--json``:
  every metric).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from visiontl.deploy.artefact import is_artefact as _is_artefact

__all__ = ["eval_artefact", "is_artefact", "predict_artefact"]


def is_artefact(path: str | Path) -> bool:
    """Whether ``path`` is an export (``*.export.json``, a main file beside one, or a folder
    holding one), to be run by :mod:`visiontl.deploy` instead of being loaded as a run."""
    return _is_artefact(Path(path))


def _echo_json(obj: Any) -> None:
    import json

    click.echo(json.dumps(obj, indent=2, default=str))


def predict_artefact(path: str | Path, images: Sequence[str | Path], topk: int = 3, score_threshold: float | None = None,
                     out_dir: str | Path | None = None, as_json: bool = False, *, fmt: str | None = None,
                     precision: str | None = None) -> None:
    """``visiontl predict ARTEFACT IMAGES...``: predict and print, draw overlays into ``out_dir``.

    Args:
        path: the artefact (manifest, main file or folder).
        images: image files or folders.
        topk: classes shown per image (classification).
        score_threshold: lowest object score kept (default: the recipe's ``eval.score_threshold``).
        out_dir: folder for drawn overlays (detection, segmentation); ``None``: none drawn.
        as_json: print JSON instead of lines.
        fmt, precision: pick one export of a folder that holds several.

    Raises:
        DeployError: the artefact cannot be loaded, no image given, or none could be read.
    """
    from visiontl.data.images import UnreadableImage, image_files, load_rgb, overlay_names
    from visiontl.deploy.errors import DeployError
    from visiontl.deploy.loader import load
    from visiontl.deploy.overlay import draw

    predictor = load(path, format=fmt, precision=precision)
    files = image_files(images)
    overlays = overlay_names(images, files)
    rows: list[dict[str, Any]] = []
    for f in files:
        row: dict[str, Any] = {"path": str(f), "top": [], "details": {}, "overlay": None, "error": None}
        try:
            image = load_rgb(f)
        except UnreadableImage as exc:
            row["error"] = str(exc)
            rows.append(row)
            continue
        prediction = predictor.predict(image, topk=topk, score_threshold=score_threshold)
        row["top"], row["details"] = prediction.top, prediction.details()
        if out_dir is not None:
            drawn = draw(image, prediction, predictor.class_names)
            if drawn is not None:
                target = Path(out_dir) / overlays[f]
                target.parent.mkdir(parents=True, exist_ok=True)
                drawn.save(target)
                row["overlay"] = str(target)
        rows.append(row)
    if as_json:
        _echo_json(rows)
    else:
        for row in rows:
            if row["error"]:
                click.echo(f"{row['path']}: unreadable ({row['error']})")
            else:
                drawn_to = f"  -> {row['overlay']}" if row["overlay"] else ""
                click.echo(f"{row['path']}: " + (", ".join(f"{name} {score:.3f}" for name, score in row["top"]) or "nothing found") + drawn_to)
    if rows and all(r["error"] for r in rows):
        # Nothing was predicted: a script must not mistake this for success.
        raise DeployError(f"None of the {len(rows)} image(s) could be read (reasons above).", fix="pass readable image files or folders")


def eval_artefact(path: str | Path, images: str | Path | None, masks: str | Path | None = None, labels: str | Path | None = None,
                  as_json: bool = False, *, fmt: str | None = None, precision: str | None = None) -> None:
    """``visiontl eval ARTEFACT --images DIR [--masks DIR | --labels FILE]``: score and print.

    Args:
        path: the artefact (manifest, main file or folder).
        images: the images (classification: ``DIR/<class>/<image>`` unless ``labels``).
        masks: segmentation: the masks folder.
        labels: classification: a ``path,label`` CSV; detection: a COCO JSON (default: YOLO
            labels beside the images).
        as_json: print every metric as JSON.
        fmt, precision: pick one export of a folder that holds several.

    Raises:
        DeployError: no ``images`` (an export has no dataset of its own), the artefact cannot
            be loaded, or the labels do not fit its task.
    """
    from visiontl.deploy.errors import DeployError
    from visiontl.deploy.loader import load

    if images is None:
        raise DeployError(f"'{path}' is an export: it carries no dataset to score, so the images must be given.",
                          fix="visiontl eval ARTEFACT --images DIR [--masks DIR | --labels FILE]")

    predictor = load(path, format=fmt, precision=precision)
    metrics = predictor.evaluate(images, labels=labels, masks=masks)
    if as_json:
        _echo_json(metrics)
        return
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, float):
            click.echo(f"{key:>18}: {value:.4f}")
        elif isinstance(value, int):
            click.echo(f"{key:>18}: {value}")
    if metrics.get("skipped"):
        click.echo(f"{'skipped':>18}: {len(metrics['skipped'])} file(s)")
