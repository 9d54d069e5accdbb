"""The ``visiontl`` logger: library code logs, the CLI decides where it goes."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("visiontl")


def warning(message: str) -> None:
    logger.warning(message)


def info(message: str) -> None:
    logger.info(message)


def configure(verbose: bool = False) -> None:
    """Send visiontl's messages to stderr as ``visiontl: warning: ...`` lines."""
    if any(getattr(h, "_visiontl", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("visiontl: %(levelname)s: %(message)s"))
    handler._visiontl = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
