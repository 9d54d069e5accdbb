"""visiontl plugin for torchvision: every torchvision classification model, by builder name.

* ``torchvision:<builder>`` (``torchvision:resnet18``, ``torchvision:squeezenet1_1`` ...), for
  every builder of ``torchvision.models.list_models(module=torchvision.models)``.
* ``pretrained: true`` loads torchvision's published weights (``model.options.weights`` picks
  an enum value such as ``IMAGENET1K_V2``; default ``DEFAULT``) from the torch hub cache, or
  downloads them; when they are not cached and the host is unreachable it fails in seconds.
* ``weights: PATH`` loads a local state_dict or checkpoint; a mismatched head is re-initialised.
* Layer groups per architecture: ``stem``, ``stage1..N`` (optionally ``final_conv``/``fc``),
  ``head``; a features/head split for feature caching where one is exact.

The hooks only dispatch by task through :data:`TASK_MODULES`: classification lives in
``classification`` (building, heads), ``groups``, ``splits``, ``weights`` and ``catalogue``. Nothing here imports torch or torchvision at import
time.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from visiontl import hookimpl
from visiontl.contracts import PluginInfo

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.cards import ModelCard
    from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup

FAMILY = "torchvision"

#: Task -> the module that serves it. Each module exposes ``model_names(task)``,
#: ``cards(task)``, ``build(request)`` and ``groups(built)``; the hooks only dispatch.
TASK_MODULES: dict[str, str] = {
    "classification": "visiontl_torchvision.classification",
    "detection": "visiontl_torchvision.detection",
    "instance_segmentation": "visiontl_torchvision.detection",
    "segmentation": "visiontl_torchvision.segmentation",
}
TASKS = tuple(TASK_MODULES)


def _module(task: str | None) -> ModuleType | None:
    if task not in TASK_MODULES:
        return None
    return importlib.import_module(TASK_MODULES[task])


@hookimpl
def visiontl_plugin_info() -> PluginInfo:
    return PluginInfo(
        name="torchvision",
        families=(FAMILY,),
        tasks=TASKS,
        requires=("torchvision>=0.15",),
        install_hint="pip install 'visiontl[torchvision]'",
        description="torchvision models for " + ", ".join(TASKS) + ", with torchvision's published weights",
    )


@hookimpl
def visiontl_model_names(family: str, task: str | None) -> list[str] | None:
    if family != FAMILY:
        return None
    names: list[str] = []
    for name in TASKS if task is None else (task,):
        module = _module(name)
        if module is not None:
            names += [n for n in module.model_names(name) if n not in names]
    return names


@hookimpl
def visiontl_select(task: str) -> list[ModelCard] | None:
    module = _module(task)
    return list(module.cards(task)) if module is not None else None


@hookimpl
def visiontl_build(request: BuildRequest) -> BuiltModel | None:
    if request.model_id.family != FAMILY:
        return None
    module = _module(request.task)
    if module is None:
        from visiontl.errors import PluginError

        raise PluginError(
            f"torchvision models serve the tasks {', '.join(TASKS)}, not '{request.task}'.",
            fix="pick a model id of a family that serves this task (see: visiontl models --task " + request.task + ")",
        )
    return module.build(request)


@hookimpl
def visiontl_freeze(built: BuiltModel) -> list[LayerGroup] | None:
    if built.model_id.family != FAMILY:
        return None
    module = _module(built.task)
    return module.groups(built) if module is not None else None
