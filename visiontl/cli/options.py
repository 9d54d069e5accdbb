"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.epochs=3 (repeatable).",
)
data_root_option = click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Root of relative dataset and weight paths (default: $VISIONTL_DATA_DIR or ./data).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def echo_json(obj: Any) -> None:
    import json

    click.echo(json.dumps(obj, indent=2, default=str))


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain aligned text table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)
