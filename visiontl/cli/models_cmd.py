"""``visiontl models``: what the installed plugins can build."""

from __future__ import annotations

import click

from visiontl.cli.options import echo_json, json_option, table


@click.command("models")
@click.option("--task", default=None, help="Only models for this task.")
@click.option("--family", default=None, help="Only this family (timm, torchvision, ...).")
@click.option("--all", "show_all", is_flag=True, help="Every buildable id, not only the catalogue.")
@json_option
def models_command(task: str | None, family: str | None, show_all: bool, as_json: bool) -> None:
    """List models: the catalogue cards, or with --all every id the plugins can build.

    \b
    Examples:
      visiontl models --task classification
      visiontl models --family timm --all
    """
    from visiontl.catalogue import buildable_ids, catalogue

    if task is not None:
        from visiontl.plugin_manager import get_plugins
        from visiontl.tasks.registry import resolve_task

        resolve_task(get_plugins(), task)  # an unknown task name: did-you-mean, not an empty list
    if show_all:
        ids = buildable_ids(task=task, family=family)
        if as_json:
            echo_json(ids)
        else:
            for fam, names in ids.items():
                click.echo(f"# {fam}: {len(names)} ids")
                for name in names:
                    click.echo(f"{fam}:{name}")
        return
    cards = catalogue(task=task, family=family)
    if as_json:
        echo_json([c.as_dict() for c in cards])
        return
    rows = []
    for c in cards:
        metric = c.metrics[0] if c.metrics else None
        rows.append([
            c.id,
            ",".join(c.tasks),
            f"{c.params_m:.1f}" if c.params_m is not None else "-",
            f"{c.gmacs:.2f}" if c.gmacs is not None else "-",
            f"{metric.name} {metric.value:g}" if metric else "-",
            "yes" if c.weights else "no",
        ])
    click.echo(table(rows, ["id", "tasks", "params(M)", "GMACs", "published", "weights"]))
    # Only the ids not already listed above count as "beyond the catalogue".
    shown = {c.id for c in cards}
    counts = {fam: n for fam, names in buildable_ids(task=task, family=family).items() if (n := len({f"{fam}:{name}" for name in names} - shown))}
    if counts:
        click.echo("\nBuildable ids beyond the catalogue: " + ", ".join(f"{f} {n}" for f, n in counts.items()) + " (visiontl models --all)")


COMMANDS = [models_command]
