"""``visiontl predict`` and ``visiontl eval``: use a trained run or checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from visiontl.cli.options import data_root_option, echo_json, json_option, set_option


@click.command("predict")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--topk", default=3, show_default=True, help="Classes to show per image (classification).")
@click.option("--score-threshold", type=float, default=None, help="Lowest score of objects kept (default: the recipe's eval.score_threshold).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Folder for drawn overlays (default: <run>/predictions for tasks that draw).")
@json_option
def predict_command(target: Path, images: tuple[Path, ...], topk: int, score_threshold: float | None, out_dir: Path | None, as_json: bool) -> None:
    """Predict IMAGES (files or folders) with TARGET: a run directory, checkpoint, ensemble recipe,
    or an exported model (its .export.json, or the folder holding it: run without torch).

    Classification prints the top-k classes; detection and segmentation also draw their
    boxes and masks onto PNGs in --out.
    """
    from visiontl.deploy.cli import is_artefact

    if is_artefact(target):  # an exported model: predicted without torch (visiontl.deploy)
        from visiontl.deploy.cli import predict_artefact

        predict_artefact(target, list(images), topk, score_threshold,
                         out_dir or (target if target.is_dir() else target.parent) / "predictions", as_json)
        return
    from visiontl import api

    if out_dir is None:
        out_dir = (target if target.is_dir() else target.parent.parent) / "predictions"
    predictions = api.predict(target, list(images), topk=topk, score_threshold=score_threshold, out_dir=out_dir)
    if as_json:
        echo_json([p.__dict__ for p in predictions])
        return
    for p in predictions:
        if p.error:
            click.echo(f"{p.path}: unreadable ({p.error})")
        else:
            drawn = f"  -> {p.overlay}" if p.overlay else ""
            click.echo(f"{p.path}: " + _labels(p.top, p.score) + drawn)
    if predictions and all(p.error for p in predictions):
        # Nothing was predicted: a script must not mistake this for success.
        from visiontl.errors import DataError

        raise DataError(f"None of the {len(predictions)} image(s) could be read (reasons above).", fix="pass readable image files or folders")


def _labels(top: list[tuple[str, float]], score: str) -> str:
    """One prediction's labels, each number said for what it is: an area is the share of the
    image's pixels, not a probability."""
    if not top:
        return "nothing found"
    if score == "area":
        return "area (share of pixels): " + ", ".join(f"{name} {share:.1%}" for name, share in top)
    if score == "score":
        return ", ".join(f"{name} (score {value:.3f})" for name, value in top)
    return ", ".join(f"{name} {value:.3f}" for name, value in top)


@click.command("eval")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--split", type=click.Choice(["val", "test"]), default="val", show_default=True,
              help="The recipe's split to score: val, or test (data.test, scanned alone).")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Score this image folder instead of the recipe's splits (classification: DIR/<class>/<image> "
                   "unless --labels; detection: YOLO labels in the matching labels/ folder unless --labels).")
@click.option("--masks", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Segmentation: the mask folder of --images (matched by file stem).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The labels of --images: a COCO JSON (detection) or a path,label CSV (classification).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset to evaluate on instead of the recipe's (its format); a relative path is looked up under the "
                   "data root, then the working directory, as recipes' data.root. Same as --set data.root=PATH.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch (default: the recipe's train.threads).")
@set_option
@data_root_option
@json_option
def eval_command(target: Path, split: str, images: Path | None, masks: Path | None, labels: Path | None, data: Path | None,
                 threads: int | None, overrides: tuple[str, ...], data_root: Path | None, as_json: bool) -> None:
    """Evaluate TARGET (run directory, checkpoint or ensemble recipe) on its validation data,
    or an exported model (its .export.json or folder: run without torch) on --images.

    Prints the checkpoint and exactly which images it scored (split, count, folder, labels)
    before the metrics. --split test scores the recipe's test split; --images DIR with
    --masks DIR (segmentation) or --labels FILE scores those folders instead, whatever the
    recipe's split keys say. --data PATH (or --set data.root=...) evaluates another copy of the
    dataset with the recipe's layout.
    """
    from visiontl.deploy.cli import is_artefact
    from visiontl.errors import ConfigError

    root = data_root.resolve() if data_root else None
    if is_artefact(target):  # an exported model: scored without torch (visiontl.deploy)
        from visiontl.deploy.cli import eval_artefact

        if masks is not None and labels is not None:
            raise ConfigError("--masks and --labels both given.", fix="--masks for segmentation, --labels for detection or classification")
        eval_artefact(target, images, masks, labels, as_json)
        return
    from visiontl import api

    if masks is not None and labels is not None:
        raise ConfigError("--masks and --labels both given.", fix="--masks for segmentation, --labels for detection (COCO JSON) or classification (CSV)")
    if (masks is not None or labels is not None) and images is None:
        raise ConfigError("--masks/--labels label the images of --images, which is missing.", fix="visiontl eval RUN --images DIR --masks DIR")
    if images is not None and split != "val":
        raise ConfigError("--split and --images both given: --images scores that folder, not a split of the recipe.", fix="give one of them")
    if data is not None:
        from visiontl.data.paths import resolve_data_path

        overrides = (f"data.root={resolve_data_path(data, root, what='--data')}", *overrides)
    metrics = api.evaluate(target, list(overrides), data_root=root, split=split, images=images, labels=masks or labels, threads=threads)
    if as_json:
        echo_json(metrics)
        return
    from visiontl.scoring import describe

    for line in describe(metrics["scored"]):
        click.echo(line)
    for key, value in metrics.items():
        if isinstance(value, float):
            click.echo(f"{key:>18}: {value:.4f}")
        elif isinstance(value, int):
            click.echo(f"{key:>18}: {value}")
    if metrics.get("skipped"):
        click.echo(f"{'skipped':>18}: {len(metrics['skipped'])} file(s)")


COMMANDS = [predict_command, eval_command]
