"""``visiontl plugins``: what is installed, what it serves, what failed and why."""

from __future__ import annotations

import click

from visiontl.cli.options import echo_json, json_option, table


@click.command("plugins")
@json_option
def plugins_command(as_json: bool) -> None:
    """List plugins: name, version, families, tasks, hooks, status.

    Plugins come from the 'visiontl' entry-point group. Block some with
    VISIONTL_DISABLE_PLUGINS=a,b; trace hook calls with VISIONTL_TRACE_PLUGINS=1.
    """
    from visiontl.plugin_manager import get_plugins

    plugins = get_plugins()
    if as_json:
        echo_json([s.as_dict() for s in plugins.statuses])
        return
    rows = []
    for s in plugins.statuses:
        hooks = ", ".join(h.removeprefix("visiontl_") for h in s.hooks)
        rows.append([s.name, s.version or "-", ",".join(s.families) or "-", ",".join(s.tasks) or "-", s.status, hooks])
    click.echo(table(rows, ["plugin", "version", "families", "tasks", "status", "hooks"]))
    for s in plugins.statuses:
        if s.status in ("failed", "missing"):
            click.echo(f"\n{s.name}: {s.error}\n  fix: {s.hint}")


COMMANDS = [plugins_command]
