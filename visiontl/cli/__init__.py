"""The ``visiontl`` command line: a thin layer over :mod:`visiontl.api`.

Importing this package imports click and visiontl's light modules only; each command
imports what it needs (torch included) when it runs, so ``visiontl --help`` stays fast.
"""

from visiontl.cli.main import cli, main

__all__ = ["cli", "main"]
