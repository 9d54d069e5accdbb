"""``visiontl config``: validate recipes and print the recipe JSON Schema."""

from __future__ import annotations

from pathlib import Path

import click

from visiontl.cli.options import echo_json, set_option


@click.group("config")
def config_group() -> None:
    """Work with recipe files."""


@config_group.command("validate")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@set_option
def validate_command(recipe: Path, overrides: tuple[str, ...]) -> None:
    """Check RECIPE against the schema; print the problems or 'valid'."""
    from visiontl.config.loader import load_recipe

    loaded = load_recipe(recipe, list(overrides))
    click.echo(f"{recipe}: valid ({loaded.task}, {loaded.model.id}, strategy {loaded.strategy.name})")


@config_group.command("schema")
def schema_command() -> None:
    """Print the recipe JSON Schema (for editors and validators)."""
    from visiontl.config.schema import Recipe

    echo_json(Recipe.model_json_schema())


COMMANDS = [config_group]
