"""Keeping modules in eval mode through ``model.train()``.

Trainers (ours, Ultralytics', a user's) call ``model.train()`` at every epoch, which would put
frozen BatchNorm layers back in training mode and let their running statistics drift. A locked
module's class is swapped for a subclass whose ``train()`` always means ``eval()``: the state
dict, ``isinstance`` checks and forward are unchanged, and unlocking restores the class.
This works through any trainer without it knowing, which wrapping or hooks would not.
"""

from __future__ import annotations

import copyreg
from typing import Any

from torch import nn

_LOCKED_CLASSES: dict[type, type] = {}


def _locked_train(self: nn.Module, mode: bool = True) -> nn.Module:
    # Always eval: the subtree of a locked module never trains.
    return nn.Module.train(self, False)


def _reduce_as_original(self: nn.Module, protocol: Any) -> Any:
    # Pickle (and deepcopy) as the original class, through the standard library's own
    # reconstructor, so saved models never reference a class that exists only in this
    # process, nor need visiontl to be loaded.
    original = type(self).__visiontl_original__
    return (copyreg._reconstructor, (original, object, None), self.__getstate__())


def _locked_class(cls: type) -> type:
    if cls not in _LOCKED_CLASSES:
        _LOCKED_CLASSES[cls] = type(
            f"EvalLocked{cls.__name__}",
            (cls,),
            {
                "train": _locked_train,
                "__reduce_ex__": _reduce_as_original,
                "__visiontl_original__": cls,
                "__module__": cls.__module__,
            },
        )
    return _LOCKED_CLASSES[cls]


def is_locked(module: nn.Module) -> bool:
    """Whether ``module`` is held in eval mode by :func:`lock_eval`."""
    return hasattr(type(module), "__visiontl_original__")


def lock_eval(module: nn.Module) -> None:
    """Hold ``module`` and its subtree in eval mode, whatever ``train()`` calls follow."""
    if not is_locked(module):
        module.__class__ = _locked_class(type(module))
    module.train(False)


def unlock(module: nn.Module) -> None:
    """Undo :func:`lock_eval` (the module follows ``train()``/``eval()`` again)."""
    if is_locked(module):
        module.__class__ = type(module).__visiontl_original__


def unlock_all(model: nn.Module) -> None:
    """Unlock every module of ``model``."""
    for module in model.modules():
        unlock(module)
