"""The command group and its single error boundary."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from visiontl import __version__
from visiontl.errors import VisiontlError


class VisiontlGroup(click.Group):
    """Catches :class:`VisiontlError` once: one line with the fix, exit code 1.

    ``--debug`` (or ``VISIONTL_DEBUG=1``) lets the traceback through instead.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VisiontlError as exc:
            if _debug(ctx):
                raise
            click.echo(f"visiontl: error: {exc}", err=True)
            ctx.exit(1)
        except ModuleNotFoundError as exc:
            # torch is an extra (a deploy-only install runs exports without it): a command
            # that needs it says so instead of showing an import traceback.
            if exc.name not in TORCH_MODULES or _debug(ctx):
                raise
            click.echo(f"visiontl: error: this command needs {exc.name}, which is not installed (a runtime-only "
                       "install runs exported models: visiontl predict/eval EXPORT). Fix: pip install "
                       "'visiontl[torch]' (or 'visiontl[all]')", err=True)
            ctx.exit(1)


#: Modules a torch-free install lacks.
TORCH_MODULES = ("torch", "torchvision")


def _debug(ctx: click.Context) -> bool:
    obj = ctx.find_root().obj or {}
    return bool(obj.get("debug")) or os.environ.get("VISIONTL_DEBUG", "") not in ("", "0")


@click.group(cls=VisiontlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="visiontl")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", is_flag=True, help="Print informational messages.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """visiontl: transfer learning for computer vision.

    \b
    Choose a model for your task and target, transfer it with a planned, audited
    freezing schedule, and measure what you get.

    \b
    Examples:
      visiontl run recipes/quickstart.yaml
      visiontl run recipes/hymenoptera_progressive.yaml --dry-run
      visiontl models --task classification
      visiontl plugins
    """
    from visiontl import log

    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    log.configure(verbose)


def _register() -> None:
    from visiontl.cli import (
        benchmark_cmd,
        config_cmd,
        explain_cmd,
        export_cmd,
        models_cmd,
        plugins_cmd,
        predict_cmd,
        run_cmd,
        search_cmd,
        select_cmd,
    )

    for module in (run_cmd, select_cmd, plugins_cmd, models_cmd, config_cmd, predict_cmd, explain_cmd, benchmark_cmd, export_cmd, search_cmd):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli.main(args=sys.argv[1:], prog_name="visiontl")
