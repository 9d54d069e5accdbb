"""``visiontl explain``: CAM overlays (and a mask score) for a trained run or checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from visiontl.cli.options import echo_json, json_option
from visiontl.explain.methods import METHODS


@click.command("explain")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--target-class", default=None, metavar="NAME", help="Class to explain (default: the predicted class; detection: every detection).")
@click.option("--method", type=click.Choice(list(METHODS)), default=None, help="CAM method (default: gradcam; eigencam for detection).")
@click.option("--layer", default=None, metavar="GROUP|MODULE", help="Layer group (e.g. stage3) or module path to look at (default: the last stage group).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Folder for the PNGs and explain.json (default: <run>/explain).")
@click.option("--masks", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of ground-truth masks named like the images: report the share of CAM energy inside them. "
              "The object is: the --object-values pixels; else, for a segmentation run, the pixels of the explained "
              "class decoded with the run's class map (other classes and ignore_index are not object); else every "
              "value but 0 and 255.")
@click.option("--object-values", default=None, metavar="V1,V2,...",
              help="Stored mask values that are the object (overrides the rule above), e.g. 1 or 7,8.")
@click.option("--score-threshold", type=float, default=None, help="Lowest detection score explained (default: the recipe's eval.score_threshold).")
@json_option
def explain_command(
    target: Path,
    images: tuple[Path, ...],
    target_class: str | None,
    method: str | None,
    layer: str | None,
    out_dir: Path | None,
    masks: Path | None,
    object_values: str | None,
    score_threshold: float | None,
    as_json: bool,
) -> None:
    """Explain IMAGES (files or folders) with TARGET, a run directory or checkpoint.

    Writes one PNG per image (the picture and its class activation map side by side) to
    <run>/explain. The CAM looks at the output of the model's last stage group (see
    `visiontl run RECIPE --dry-run` for the groups); --layer picks another.

    \b
    Examples:
      visiontl explain runs/classification/hymenoptera data/hymenoptera_data/val/bees
      visiontl explain runs/segmentation/pennfudan img.png --target-class person
      visiontl explain runs/segmentation/pennfudan data/pennfudan/images --masks data/pennfudan/masks
      visiontl explain runs/detection/pennfudan img.png --method eigencam
    """
    from visiontl.explain.run import explain

    report = explain(
        target,
        list(images),
        target_class=target_class,
        method=method,
        layer=layer,
        out_dir=out_dir,
        masks=masks,
        object_values=_values(object_values),
        score_threshold=score_threshold,
    )
    if as_json:
        echo_json(report.as_dict())
        return
    click.echo(f"{report.method} on {report.layer}")
    for item in report.items:
        if item.error:
            click.echo(f"{item.path}: not explained ({item.error})")
            continue
        what = item.class_name or "all detections"
        score = f" {item.score:.3f}" if item.score is not None else ""
        energy = f"  energy in mask {item.energy:.3f} (mask area {item.area:.3f})" if item.energy is not None else ""
        click.echo(f"{item.path}: {what}{score}{energy}  -> {item.overlay}")
    if report.masks is not None:
        s = report.masks
        if s.per_image:
            click.echo(
                f"CAM energy in mask: {s.mean_energy:.3f} over {len(s.per_image)} image(s) "
                f"(chance, the mean mask area: {s.mean_area:.3f}); CAM peak in mask: {s.pointing_game:.0%}"
            )
        else:
            click.echo("CAM energy in mask: no image could be scored")
        errors = {i.path for i in report.items if i.error}
        for path, reason in s.skipped.items():
            if path not in errors:  # unexplained images are listed above
                click.echo(f"  not scored: {path}: {reason}")
    click.echo(f"wrote {sum(1 for i in report.items if i.overlay)} overlay(s) and explain.json to {report.out_dir}")
    if report.items and all(item.error for item in report.items):
        # Nothing was explained: a script must not mistake this for success.
        from visiontl.errors import DataError

        raise DataError(f"None of the {len(report.items)} image(s) could be explained (reasons above).",
                        fix="pass readable image files or folders")



def _values(text: str | None) -> list[int] | None:
    """``--object-values 7,8`` as integers."""
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        from visiontl.errors import ConfigError

        raise ConfigError(f"--object-values '{text}' is not a comma-separated list of integers.", fix="e.g. --object-values 7,8") from None

COMMANDS = [explain_command]
