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
    """Predict IMAGES (files or folders) with TARGET: a run directory, checkpoint or ensemble recipe.

    Classification prints the top-k classes; detection and segmentation also draw their
    boxes and masks onto PNGs in --out.
    """
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
            click.echo(f"{p.path}: " + (", ".join(f"{name} {prob:.3f}" for name, prob in p.top) or "nothing found") + drawn)
    if predictions and all(p.error for p in predictions):
        # Nothing was predicted: a script must not mistake this for success.
        from visiontl.errors import DataError

        raise DataError(f"None of the {len(predictions)} image(s) could be read (reasons above).", fix="pass readable image files or folders")


@click.command("eval")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset to evaluate on instead of the recipe's (its format); a relative path is looked up under the "
                   "data root, then the working directory, as recipes' data.root. Same as --set data.root=PATH.")
@set_option
@data_root_option
@json_option
def eval_command(target: Path, data: Path | None, overrides: tuple[str, ...], data_root: Path | None, as_json: bool) -> None:
    """Evaluate TARGET (run directory, checkpoint or ensemble recipe) on its validation data.

    Use --data PATH (or --set data.root=... / data.val=...) to evaluate on other data.
    """
    from visiontl import api

    root = data_root.resolve() if data_root else None
    if data is not None:
        from visiontl.data.paths import resolve_data_path

        overrides = (f"data.root={resolve_data_path(data, root, what='--data')}", *overrides)
    metrics = api.evaluate(target, list(overrides), data_root=root)
    if as_json:
        echo_json(metrics)
        return
    for key, value in metrics.items():
        if isinstance(value, float):
            click.echo(f"{key:>18}: {value:.4f}")
        elif isinstance(value, int):
            click.echo(f"{key:>18}: {value}")
    if metrics.get("skipped"):
        click.echo(f"{'skipped':>18}: {len(metrics['skipped'])} file(s)")


COMMANDS = [predict_command, eval_command]
