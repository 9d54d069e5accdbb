"""Reading Ultralytics checkpoints without running code stored in them.

An Ultralytics ``.pt`` pickles the whole network (``{"model": DetectionModel, "ema": ...}``), so
it cannot be read as plain tensors, and Ultralytics' own loader unpickles it completely: a crafted
file runs whatever it names the moment it is opened. Here a checkpoint is read with
``torch.load(weights_only=True)`` and an allow-list of the globals a genuine checkpoint needs:

* network layers: ``nn.Module`` subclasses from ``torch.nn.modules`` and from Ultralytics' own
  network and loss modules (``ultralytics.nn.*``, ``ultralytics.utils.loss``/``tal``);
* plain data Ultralytics stores beside them: its ``IterableSimpleNamespace`` of training
  arguments, ``SimpleNamespace``, paths, and NumPy arrays and scalars.

A file that names anything else (``os.system``, ``builtins.eval``, an unknown class ...) is refused
before a single object is built, with the names it asked for. Trusting a file (``trust=True``,
from ``model.trust_weights`` or ``--trust-weights``) falls back to Ultralytics' full unpickle
with a warning: that is only for files the user made or vouches for.

Tensors are then taken from the module tree by walking its parameter and buffer tables, not by
calling methods on the loaded objects.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from visiontl.errors import WeightsError

#: Module prefixes whose ``nn.Module`` subclasses a checkpoint may name.
MODULE_PREFIXES = ("torch.nn.modules", "ultralytics.nn", "ultralytics.utils.loss", "ultralytics.utils.tal")

#: Data-only globals a checkpoint may name, beside layers (name -> ``module:attribute``).
DATA_GLOBALS = {
    "ultralytics.utils.IterableSimpleNamespace": "ultralytics.utils:IterableSimpleNamespace",
    "types.SimpleNamespace": "types:SimpleNamespace",
    "pathlib.PosixPath": "pathlib:PosixPath",
    "pathlib.WindowsPath": "pathlib:WindowsPath",
    "pathlib.Path": "pathlib:Path",
    "numpy.core.multiarray._reconstruct": "numpy.core.multiarray:_reconstruct",
    "numpy._core.multiarray._reconstruct": "numpy._core.multiarray:_reconstruct",
    "numpy.core.multiarray.scalar": "numpy.core.multiarray:scalar",
    "numpy._core.multiarray.scalar": "numpy._core.multiarray:scalar",
    "numpy.ndarray": "numpy:ndarray",
    "numpy.dtype": "numpy:dtype",
}

#: How many refused names an error shows.
_SHOWN = 5


def allowed_global(name: str) -> Any | None:
    """The object a checkpoint may reference as ``name``, or ``None`` when it is not allowed.

    Only modules under :data:`MODULE_PREFIXES` (and NumPy's for its dtype classes) are imported
    to answer, so a crafted name cannot make this import something else.
    """
    import torch

    if name in DATA_GLOBALS:
        module_name, _, attr = DATA_GLOBALS[name].partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            return None
    module_name, _, attr = name.rpartition(".")
    if module_name == "numpy.dtypes" and attr.endswith("DType"):
        import numpy as np

        found = getattr(getattr(np, "dtypes", None), attr, None)
        return found if isinstance(found, type) and issubclass(found, np.dtype) else None
    if not attr or not any(module_name == p or module_name.startswith(p + ".") for p in MODULE_PREFIXES):
        return None
    try:
        found = getattr(importlib.import_module(module_name), attr, None)
    except ImportError:
        return None
    if isinstance(found, type) and issubclass(found, torch.nn.Module):
        return found
    return None


def read_checkpoint(path: Path, *, trust: bool = False) -> dict[str, Any]:
    """The float32 tensors of an Ultralytics checkpoint's network (its ``ema``, else ``model``).

    Args:
        path: the ``.pt`` file.
        trust: the user vouched for the file: when the safe read refuses it, unpickle it fully
            (Ultralytics' own loader), with a warning.

    Raises:
        WeightsError: the file names globals outside the allow-list (and is not trusted), is not
            a checkpoint, or holds no network.
    """
    import torch

    try:
        needed = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception as exc:  # noqa: BLE001 - not a torch.save archive: one clear message
        raise WeightsError(f"'{path}' is not a PyTorch checkpoint ({type(exc).__name__}: {_first_line(exc)}).",
                           fix="pass an Ultralytics .pt checkpoint, a state_dict saved with torch.save, or a visiontl checkpoint") from None
    allowed = {name: allowed_global(name) for name in needed}
    refused = [name for name, obj in allowed.items() if obj is None]
    if refused:
        if trust:
            return _read_trusted(path, refused)
        shown = ", ".join(refused[:_SHOWN]) + (f" (+{len(refused) - _SHOWN} more)" if len(refused) > _SHOWN else "")
        raise WeightsError(
            f"Refusing to load '{path}': it names {len(refused)} object(s) outside what an Ultralytics "
            f"checkpoint needs ({shown}); loading it could run code stored in the file.",
            fix="use a checkpoint written by Ultralytics or visiontl training, or a state_dict; if you made this file "
            "or trust its source, set model.trust_weights: true (or --trust-weights)",
        )
    entries = [(obj, name) if f"{obj.__module__}.{obj.__qualname__}" != name else obj for name, obj in allowed.items()]
    try:
        with torch.serialization.safe_globals(entries):
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a reader failure becomes one clear message
        raise WeightsError(f"Cannot read Ultralytics checkpoint '{path}': {type(exc).__name__}: {_first_line(exc)}",
                           fix="pass a checkpoint written by Ultralytics training (weights/best.pt or last.pt)") from None
    return _network_tensors(ckpt, path)


def _read_trusted(path: Path, refused: list[str]) -> dict[str, Any]:
    """Ultralytics' full unpickle, for a file the user trusts (it may run code)."""
    from visiontl import log
    from visiontl_ultralytics import offline

    log.warning(f"model.trust_weights: unpickling '{path}' fully although it names {', '.join(refused[:_SHOWN])}; "
                "this runs any code the file contains")
    offline.import_ultralytics()
    from ultralytics.nn.tasks import torch_safe_load

    try:
        with offline.ultralytics_logging(verbose=False):
            ckpt, _ = torch_safe_load(str(path))
    except Exception as exc:  # noqa: BLE001 - a reader failure becomes one clear message
        raise WeightsError(f"Cannot read trusted checkpoint '{path}': {type(exc).__name__}: {_first_line(exc)}") from None
    return _network_tensors(ckpt, path)


def _network_tensors(ckpt: Any, path: Path) -> dict[str, Any]:
    import torch

    model = None
    if isinstance(ckpt, dict):
        model = next((ckpt[k] for k in ("ema", "model") if isinstance(ckpt.get(k), torch.nn.Module)), None)
    if model is None:
        raise WeightsError(
            f"Ultralytics checkpoint '{path}' holds no network ('ema' or 'model').",
            fix="pass a checkpoint written by Ultralytics training (weights/best.pt or last.pt)",
        )
    return {k: (v.float() if v.is_floating_point() else v) for k, v in module_tensors(model).items()}


def module_tensors(module: Any, prefix: str = "") -> dict[str, Any]:
    """Parameters and persistent buffers by ``state_dict`` name, read from the module tables.

    The same names as ``module.state_dict()``, without calling anything a loaded object might
    have redefined (methods, state-dict hooks).
    """
    import torch

    table = vars(module)
    out: dict[str, Any] = {}
    for name, value in (table.get("_parameters") or {}).items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value.detach()
    skip = table.get("_non_persistent_buffers_set") or set()
    for name, value in (table.get("_buffers") or {}).items():
        if isinstance(value, torch.Tensor) and name not in skip:
            out[prefix + name] = value.detach()
    for name, child in (table.get("_modules") or {}).items():
        if isinstance(child, torch.nn.Module):
            out.update(module_tensors(child, f"{prefix}{name}."))
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else ""
