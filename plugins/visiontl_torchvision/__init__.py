"""visiontl plugin for torchvision: every torchvision classification model, by builder name.

* ``torchvision:<builder>`` (``torchvision:resnet18``, ``torchvision:squeezenet1_1`` ...), for
  every builder of ``torchvision.models.list_models(module=torchvision.models)``.
* ``pretrained: true`` loads torchvision's published weights (``model.options.weights`` picks
  an enum value such as ``IMAGENET1K_V2``; default ``DEFAULT``) from the torch hub cache, or
  downloads them; when they are not cached and the host is unreachable it fails in seconds.
* ``weights: PATH`` loads a local state_dict or checkpoint; a mismatched head is re-initialised.
* Layer groups per architecture: ``stem``, ``stage1..N`` (optionally ``final_conv``/``fc``),
  ``head``; a features/head split for feature caching where one is exact.

The hooks only dispatch by task: the work lives in ``classification`` (building, heads),
``groups``, ``splits``, ``weights`` and ``catalogue``. Detection and segmentation modules can
join them and be dispatched the same way. Nothing here imports torch or torchvision at import
time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visiontl import hookimpl
from visiontl.contracts import PluginInfo

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.cards import ModelCard
    from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup

FAMILY = "torchvision"
CLASSIFICATION = "classification"
TASKS = (CLASSIFICATION,)


@hookimpl
def visiontl_plugin_info() -> PluginInfo:
    return PluginInfo(
        name="torchvision",
        families=(FAMILY,),
        tasks=TASKS,
        requires=("torchvision>=0.15",),
        install_hint="pip install 'visiontl[torchvision]'",
        description="every torchvision classification model, with torchvision's published weights",
    )


@hookimpl
def visiontl_model_names(family: str, task: str | None) -> list[str] | None:
    if family != FAMILY:
        return None
    if task not in (None, *TASKS):
        return []
    from visiontl_torchvision.classification import model_names

    return model_names()


@hookimpl
def visiontl_select(task: str) -> list[ModelCard] | None:
    if task != CLASSIFICATION:
        return None
    from visiontl_torchvision.catalogue import classification_cards

    return list(classification_cards())


@hookimpl
def visiontl_build(request: BuildRequest) -> BuiltModel | None:
    if request.model_id.family != FAMILY or request.task != CLASSIFICATION:
        return None
    from visiontl_torchvision.classification import build

    return build(request)


@hookimpl
def visiontl_freeze(built: BuiltModel) -> list[LayerGroup] | None:
    if built.model_id.family != FAMILY or built.task != CLASSIFICATION:
        return None
    from visiontl_torchvision.groups import classification_groups

    return classification_groups(built.model)
