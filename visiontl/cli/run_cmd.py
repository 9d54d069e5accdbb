"""``visiontl run``: train a recipe (or plan it with --dry-run, or resume a run)."""

from __future__ import annotations

from pathlib import Path

import click

from visiontl.cli.options import data_root_option, set_option
from visiontl.errors import ConfigError


@click.command("run")
@click.argument("recipe", required=False, type=click.Path(dir_okay=False, path_type=Path))
@set_option
@data_root_option
@click.option("--dry-run", is_flag=True, help="Print the plan per phase (groups, parameters, lr, BN mode) and stop.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path), help="Continue an interrupted run directory from its last checkpoint.")
@click.option("--trust-weights", is_flag=True,
              help="Allow the recipe's model.weights file to be fully unpickled if the safe reader refuses it "
              "(same as --set model.trust_weights=true). It can run code: only for files you made or trust.")
def run_command(recipe: Path | None, overrides: tuple[str, ...], data_root: Path | None, dry_run: bool, resume_dir: Path | None,
                trust_weights: bool) -> None:
    """Train RECIPE and write a run directory (runs/<task>/<name>).

    \b
    Examples:
      visiontl run recipes/quickstart.yaml
      visiontl run recipes/hymenoptera_progressive.yaml --set train.epochs=2
      visiontl run recipes/hymenoptera_progressive.yaml --dry-run
      visiontl run --resume runs/classification/quickstart
    """
    from visiontl import api
    from visiontl.config.loader import load_recipe

    if resume_dir is not None:
        if recipe is not None or overrides or trust_weights:
            raise ConfigError("--resume continues a run with its stored recipe; it takes no RECIPE, --set or --trust-weights.")
        outcome = api.resume(resume_dir, data_root=data_root.resolve() if data_root else None)
        _print_summary(outcome.summary)
        return
    if recipe is None:
        raise ConfigError("visiontl run needs a RECIPE file (or --resume RUN_DIR).", fix="e.g. visiontl run recipes/quickstart.yaml")
    loaded = load_recipe(recipe, list(overrides) + (["model.trust_weights=true"] if trust_weights else []))
    if dry_run:
        prepared = api.prepare(loaded, data_root=data_root.resolve() if data_root else None)
        click.echo(f"Model {prepared.built.model_id} ({prepared.built.weights.source}); task {loaded.task}; "
                   f"{prepared.task.labels_line(prepared.info)}; "
                   + ", ".join(f"{split}: {prepared.info.images(split)} images" for split in prepared.info.counts))
        click.echo(prepared.plan.table())
        return
    outcome = api.run(loaded, data_root=data_root.resolve() if data_root else None)
    _print_summary(outcome.summary)


def _print_summary(summary: dict) -> None:
    primary = summary["primary_metric"]
    best = summary["best"]
    final = summary["final"]
    w = summary["weights"]
    click.echo("")
    click.echo(f"Run      {summary['run_dir']}")
    click.echo(f"Model    {summary['model_id']}  weights: {w['source']} ({w['loaded']} tensors loaded)")
    click.echo(f"Strategy {summary['strategy']}: " + ", ".join(f"{p['name']} x{p['epochs']}" for p in summary["phases"]))
    click.echo(f"Best     {primary} {best[primary]:.4f} at epoch {best['epoch']}")
    click.echo(f"Final    {primary} {final.get(primary, float('nan')):.4f} after {summary['epochs_run']} epoch(s)")
    click.echo(f"Skipped  {summary['data']['skipped_count']} file(s)")
    click.echo(f"Time     {summary['timings_s'].get('train_total', 0.0):.1f} s")
    click.echo(f"Report   {Path(summary['run_dir']) / 'report.md'}")


COMMANDS = [run_command]
