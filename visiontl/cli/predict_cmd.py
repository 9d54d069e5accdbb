"""``visiontl predict`` and ``visiontl eval``: use a trained run or checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from visiontl.cli.options import data_root_option, echo_json, json_option, set_option


@click.command("predict")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--topk", default=3, show_default=True, help="Classes to show per image.")
@json_option
def predict_command(target: Path, images: tuple[Path, ...], topk: int, as_json: bool) -> None:
    """Classify IMAGES (files or folders) with TARGET, a run directory or checkpoint."""
    from visiontl import api

    predictions = api.predict(target, list(images), topk=topk)
    if as_json:
        echo_json([p.__dict__ for p in predictions])
        return
    for p in predictions:
        if p.error:
            click.echo(f"{p.path}: unreadable ({p.error})")
        else:
            click.echo(f"{p.path}: " + ", ".join(f"{name} {prob:.3f}" for name, prob in p.top))


@click.command("eval")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@set_option
@data_root_option
@json_option
def eval_command(target: Path, overrides: tuple[str, ...], data_root: Path | None, as_json: bool) -> None:
    """Evaluate TARGET (run directory or checkpoint) on its recipe's validation data.

    Use --set data.root=... / data.val=... to evaluate on other data.
    """
    from visiontl import api

    metrics = api.evaluate(target, list(overrides), data_root=data_root.resolve() if data_root else None)
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
