"""visiontl: transfer learning for computer vision.

``from visiontl import hookimpl`` is all a plugin needs to start. The Python API
(``visiontl.run``, ``visiontl.predict`` ...) is imported lazily so that importing the package
(and the CLI's ``--help``) never pays for torch.
"""

from __future__ import annotations

from typing import Any

from visiontl.errors import VisiontlError
from visiontl.hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "run": "visiontl.api",
    "resume": "visiontl.api",
    "prepare": "visiontl.api",
    "predict": "visiontl.api",
    "evaluate": "visiontl.api",
    "load_recipe": "visiontl.config.loader",
    "Recipe": "visiontl.config.schema",
    "get_plugins": "visiontl.plugin_manager",
}


def select(*args: Any, **kwargs: Any) -> Any:
    """Recommend models and a transfer strategy (see :func:`visiontl.selection.engine.select`)."""
    from visiontl.selection.engine import select as _select

    return _select(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'visiontl' has no attribute {name!r}")


__all__ = ["VisiontlError", "hookimpl", "__version__", "select", *_LAZY]
