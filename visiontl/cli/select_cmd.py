"""``visiontl select``: which model and which transfer strategy for a task, target and data."""

from __future__ import annotations

from pathlib import Path

import click

from visiontl.cli.options import echo_json, json_option, table


def _candidate(text: str) -> tuple[str, Path | None]:
    model_id, _, weights = text.partition("=")
    return model_id.strip(), Path(weights) if weights else None


@click.command("select")
@click.option("--task", default="classification", show_default=True,
              help="Any installed task: classification, detection, instance_segmentation, segmentation, or a plugin's (see: visiontl plugins).")
@click.option("--target", default="server", show_default=True, help="Deployment target: edge, mobile, server, cloud, local (this machine, after --calibrate).")
@click.option("--images", type=int, default=None, help="Number of training images.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="Dataset folder to count images (and classes) in.")
@click.option("--max-latency-ms", type=float, default=None, help="Batch-1 latency budget (default: the target's).")
@click.option("--max-params", type=float, default=None, help="Largest parameter count, in millions.")
@click.option("--max-size-mb", type=float, default=None, help="Largest weights file at the target's precision (default: the target's).")
@click.option("--min-metric", type=float, default=None, help="Lowest selection metric (top-1, box mAP, mIoU ...; highest for a lower-is-better one).")
@click.option("--top", type=int, default=5, show_default=True, help="Candidates to show.")
@click.option("--priority", type=click.Choice(["accuracy", "balanced", "latency", "speed"]), default=None, help="How much latency counts against accuracy (default: the target's).")
@click.option("--measure", is_flag=True, help="Benchmark the shortlisted candidates on this machine and re-rank (imports torch).")
@click.option("--probe", "probe_data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="Rank candidates by a linear probe of their frozen features on this ImageFolder dataset.")
@click.option("--candidate", "candidates", multiple=True, metavar="ID[=WEIGHTS]", help="Choose among these models only (repeatable); =WEIGHTS gives a local weights file for --probe.")
@click.option("--threads", type=int, default=None, help="CPU threads for --measure/--probe/--calibrate.")
@click.option("--calibrate", is_flag=True, help="Time reference models on this machine and fit the 'local' target's latency model.")
@click.option("--targets", "targets_file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="YAML file with more target definitions.")
@click.option("--write-recipe", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a runnable recipe for the top candidate and the advised strategy.")
@json_option
def select_command(task: str, target: str, images: int | None, data: Path | None, max_latency_ms: float | None, max_params: float | None,
                   max_size_mb: float | None, min_metric: float | None, top: int, priority: str | None, measure: bool, probe_data: Path | None,
                   candidates: tuple[str, ...], threads: int | None, calibrate: bool, targets_file: Path | None, write_recipe: Path | None, as_json: bool) -> None:
    """Recommend models and a transfer strategy, with one line of reasons each.

    \b
    Examples:
      visiontl select --task segmentation --target edge
      visiontl select --task multilabel --target mobile --write-recipe tags.yaml   (a plugin's task)
      visiontl select --task classification --target mobile --images 30000
      visiontl select --target local --measure           (after: visiontl select --calibrate)
      visiontl select --probe data/hymenoptera_data --candidate torchvision:squeezenet1_1=weights/squeezenet1_1_imagenet_features.pth --candidate torchvision:squeezenet1_1
    """
    from visiontl.selection import engine

    if calibrate:
        from visiontl.selection.calibrate import calibrate as run_calibration
        from visiontl.selection.engine import _catalogue

        model = run_calibration(_catalogue("classification"), threads)
        click.echo(f"calibrated: {model.basis}; median |relative error| of the fit {model.fit_error:.1%}")
        return
    cards = None
    if candidates:
        cards = _cards_for(candidates, task)
    selection = engine.select(task, target, images=images, data=data, max_latency_ms=max_latency_ms, max_params_m=max_params,
                              max_size_mb=max_size_mb, min_metric=min_metric, top=top, priority=priority, candidates=cards, targets_file=targets_file)
    if measure:
        from visiontl.selection.measure import measure as run_measure

        selection = run_measure(selection, threads)
    probe_rows = None
    if probe_data is not None:
        probe_rows = _probe(selection, candidates, probe_data, threads)
    if write_recipe is not None and selection.best is not None:
        from visiontl.selection.recipe import write_recipe as write

        write(selection, write_recipe, data)
    if as_json:
        out = selection.as_dict()
        if probe_rows is not None:
            out["probe"] = probe_rows
        echo_json(out)
        return
    _print(selection, probe_rows, write_recipe)


def _cards_for(candidates: tuple[str, ...], task: str) -> list:
    from visiontl.cards import ModelCard
    from visiontl.catalogue import catalogue
    from visiontl.ids import parse_model_id

    known = {c.id: c for c in catalogue(task=task)}
    out = []
    for text in candidates:
        model_id, _ = _candidate(text)
        parse_model_id(model_id)
        out.append(known.get(model_id) or ModelCard(id=model_id, tasks=(task,)))
    return list({c.id: c for c in out}.values())


def _probe(selection, candidates: tuple[str, ...], data: Path, threads: int | None) -> list[dict]:
    from visiontl import env
    from visiontl.selection.probe import ProbeSpec, probe
    from visiontl.train.precision import torch_threads

    if candidates:
        specs = [ProbeSpec(mid, w, pretrained=w is None and False) for mid, w in map(_candidate, candidates)]
    else:
        specs = [ProbeSpec(c.id, pretrained=True) for c in selection.candidates]
    with torch_threads(threads):
        results = probe(specs, data, data_root=env.data_root())
    by_id = {}
    for r in results:
        if r.accuracy is not None:
            by_id.setdefault(r.spec.model_id, r.accuracy)
    for c in selection.candidates:
        c.probe_accuracy = by_id.get(c.id)
    selection.candidates.sort(key=lambda c: -(c.probe_accuracy if c.probe_accuracy is not None else -1.0))
    return [{"candidate": r.spec.label, "accuracy": r.accuracy, "seconds": round(r.seconds, 1), "error": r.error} for r in results]


def _print(selection, probe_rows, recipe_path) -> None:
    t = selection.target
    data = selection.data
    size = f"{data.images:,} images" if data.images is not None else "dataset size unknown"
    click.echo(f"{selection.task} on '{t.name}' ({t.description}); budget {selection.budget_ms:g} ms at batch 1; {size}")
    rows = []
    for i, c in enumerate(selection.candidates, 1):
        lat = c.measured_ms if c.measured_ms is not None else c.latency_ms
        mark = "*" if c.pareto else " "
        rows.append([f"{i}{mark}", c.id, f"{c.metric.value:g}" if c.metric else "-", f"{lat:.1f}" if lat is not None else "-",
                     f"{c.params_m:.1f}" if c.params_m is not None else "-", f"{c.score:.1f}"])
    if rows:
        label = next((c.metric_label for c in selection.candidates if c.metric is not None), "metric")
        click.echo(table(rows, ["#", "model", label, "latency ms", "params M", "score"]))
    else:
        click.echo("No model meets the constraints.")
    click.echo("")
    for i, c in enumerate(selection.candidates, 1):
        click.echo(f"{i}. {c.id}: {c.reasons}")
    if selection.rejected:
        click.echo("\nClosest rejected:")
        for r in selection.rejected:
            click.echo(f"   {r.id}: {r.reason}")
    if probe_rows:
        click.echo("\nLinear probe on your data:")
        for row in probe_rows:
            acc = f"{row['accuracy']:.3f}" if row["accuracy"] is not None else "failed"
            click.echo(f"   {row['candidate']}: {acc} ({row['seconds']} s){'  ' + row['error'] if row['error'] else ''}")
    a = selection.advice
    click.echo(f"\nStrategy: {a.strategy}, augmentation {a.augmentation}" + (", ensemble suggested" if a.ensemble else ""))
    for line in a.reasons:
        click.echo(f"   - {line}")
    for note in selection.notes:
        click.echo(f"Note: {note}")
    if selection.candidates:
        click.echo(f"Latency basis: {selection.candidates[0].latency_basis or 'none'}")
    if recipe_path is not None:
        click.echo(f"Recipe written to {recipe_path}")


COMMANDS = [select_command]
