"""``visiontl config``: validate recipes and print the recipe JSON Schema."""

from __future__ import annotations

from pathlib import Path

import click

from visiontl.cli.options import data_root_option, echo_json, set_option


@click.group("config")
def config_group() -> None:
    """Work with recipe files."""


@config_group.command("validate")
@click.argument("recipe", type=click.Path(path_type=Path))
@set_option
@data_root_option
@click.option("--schema-only", is_flag=True, help="Check against the schema only: no plugins, model ids or data.")
def validate_command(recipe: Path, overrides: tuple[str, ...], data_root: Path | None, schema_only: bool) -> None:
    """Check that RECIPE can run: the schema, then what needs the plugins and the data.

    \b
    Checks, without building a model or training: every option's type and range; that the
    task and the model id exist for the installed plugins; that the weights file, data root
    and dataset paths exist and the dataset scans; that eval.metric is one the task reports;
    that the device is available. Prints every problem, or 'valid'.

    \b
    Examples:
      visiontl config validate recipes/hymenoptera_progressive.yaml
      visiontl config validate my.yaml --set eval.metric=map50 --data-root /data
    """
    from visiontl.config.loader import load_recipe

    loaded = load_recipe(recipe, list(overrides))
    summary = f"{recipe}: valid ({loaded.task}, {loaded.model.id}, strategy {loaded.strategy.name})"
    if schema_only:
        click.echo(summary + "; schema only")
        return
    from visiontl.config.preflight import preflight

    report = preflight(loaded, data_root=data_root.resolve() if data_root else None)
    report.raise_for_problems(f"Recipe '{recipe}'")
    info = report.info
    if info is not None:
        splits = ", ".join(f"{split} {info.images(split)} images" for split in info.counts)
        from visiontl.tasks.base import count_of
        from visiontl.tasks.registry import find_task

        task = find_task(loaded.task)
        summary += f"; data: {task.labels_line(info) if task is not None else count_of(info.num_classes, 'classes')}, {splits}"
    elif loaded.data.synthesize:
        summary += f"; data: generated at the first run (data.synthesize: {loaded.data.synthesize})"
    click.echo(summary)


@config_group.command("schema")
def schema_command() -> None:
    """Print the recipe JSON Schema (for editors and validators)."""
    from visiontl.config.schema import Recipe

    echo_json(Recipe.model_json_schema())


COMMANDS = [config_group]
