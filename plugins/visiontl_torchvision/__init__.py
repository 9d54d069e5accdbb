"""visiontl plugin for torchvision: every torchvision classification model, by builder name.

* ``torchvision:<builder>`` (``torchvision:resnet18``, ``torchvision:squeezenet1_1`` ...), for
  every builder of ``torchvision.models.list_models(module=torchvision.models)``.
* ``pretrained: true`` loads torchvision's published weights (``model.options.weights`` picks
  an enum value such as ``IMAGENET1K_V2``; default ``DEFAULT``) from the torch hub cache, or
  downloads them; when they are not cached and the host is unreachable it fails in seconds.
* ``weights: PATH`` loads a local state_dict or checkpoint; a mismatched head is re-initialised.
* Layer groups per architecture: ``stem``, ``stage1..N`` (optionally ``final_conv``/``fc``),
  ``head``; a features/head split for feature caching where one is exact.

The hooks only dispatch: by task name through :data:`TASK_MODULES`, and for any other task by
its output contract (:mod:`.outputs`: classifiers give an image-level vector, segmenters a
dense map, for any task that asks for one). Classification lives in ``classification``
(building, heads), ``groups``, ``splits``, ``weights`` and ``catalogue``. Nothing here imports
torch or torchvision at import time.

``visiontl_export`` answers for detectors only (``detection_export``: the whole detector,
post-processing included, as one per-image graph); classifiers and segmenters return tensors
and go through the core's generic exporter.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from visiontl import hookimpl
from visiontl.contracts import PluginInfo
from visiontl_torchvision.outputs import OUTPUTS, module_name, refusal

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl.cards import ModelCard
    from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup
    from visiontl.export.contracts import ExportArtifact, ExportRequest

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


def _module(task: str | None, output: str = "") -> ModuleType | None:
    """The module serving ``task``: by name, else by the output contract it needs."""
    name = module_name(task, output, TASK_MODULES)
    return importlib.import_module(name) if name else None


@hookimpl
def visiontl_plugin_info() -> PluginInfo:
    return PluginInfo(
        name="torchvision",
        families=(FAMILY,),
        tasks=TASKS,
        requires=("torchvision>=0.15",),
        install_hint="pip install 'visiontl[torchvision]'",
        description="torchvision models for " + ", ".join(TASKS) + " (and any task of image-level or dense outputs), with torchvision's published weights",
        outputs=OUTPUTS,
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
    # Cards are offered for the tasks torchvision knows by name; the core's catalogue offers
    # them for other tasks of the same output (PluginInfo.outputs).
    module = importlib.import_module(TASK_MODULES[task]) if task in TASK_MODULES else None
    return list(module.cards(task)) if module is not None else None


@hookimpl
def visiontl_build(request: BuildRequest) -> BuiltModel | None:
    if request.model_id.family != FAMILY:
        return None
    module = _module(request.task, request.output)
    if module is None:
        raise refusal(request.task, request.output, TASKS)
    return module.build(request)


@hookimpl
def visiontl_freeze(built: BuiltModel) -> list[LayerGroup] | None:
    if built.model_id.family != FAMILY:
        return None
    module = _module(built.task, built.output)
    return module.groups(built) if module is not None else None


@hookimpl
def visiontl_export(model: nn.Module, request: ExportRequest) -> ExportArtifact | None:
    if not request.model_id.startswith(f"{FAMILY}:") or request.task not in ("detection", "instance_segmentation"):
        return None
    from visiontl_torchvision.detection_export import export

    return export(model, request)
