"""An example third-party visiontl plugin: a new task and a new model family.

* the task ``multilabel``: any number of labels per image (tagging), read from a CSV of
  ``path,labels``; sigmoid outputs, binary cross-entropy, mean average precision
  (:mod:`visiontl_example.task`);
* the family ``tinycnn``: three small plain CNNs defined here (``tinycnn:nano``,
  ``tinycnn:micro``, ``tinycnn:small``), for both ``classification`` and ``multilabel``, with
  catalogue cards (parameters, MAC profile) in ``catalogue.json``
  (:mod:`visiontl_example.models`, :mod:`visiontl_example.catalogue`).

visiontl finds this module through the entry point in ``pyproject.toml``::

    [project.entry-points.visiontl]
    example = "visiontl_example"

Every hook below imports what it needs inside the function: importing this module costs
nothing (no torch), so ``visiontl plugins`` and ``visiontl select`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visiontl import hookimpl
from visiontl.contracts import PluginInfo

if TYPE_CHECKING:  # pragma: no cover - typing only
    from visiontl.cards import ModelCard
    from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup
    from visiontl.tasks.base import TaskAdapter

__version__ = "0.1.0"

FAMILY = "tinycnn"
TASK = "multilabel"
#: The tasks tinycnn models serve: both want (batch, classes) logits.
MODEL_TASKS = ("classification", TASK)


@hookimpl
def visiontl_plugin_info() -> PluginInfo:
    """1:N: say who we are, which families we build and which tasks we add."""
    return PluginInfo(
        name="example",
        families=(FAMILY,),
        tasks=(TASK,),
        install_hint="pip install docs/examples/visiontl-example-plugin",
        description="example third-party plugin: multi-label task, tiny CNN family",
        version=__version__,
    )


@hookimpl
def visiontl_tasks() -> list[TaskAdapter]:
    """1:N: contribute the multilabel task (the core contributes classification etc.)."""
    from visiontl_example.task import MultiLabelTask

    return [MultiLabelTask()]


@hookimpl
def visiontl_select(task: str) -> list[ModelCard] | None:
    """1:N: offer our cards for the tasks they serve; decline the others."""
    if task not in MODEL_TASKS:
        return None
    from visiontl_example.catalogue import cards

    return cards()


@hookimpl
def visiontl_model_names(family: str, task: str | None) -> list[str] | None:
    """firstresult, keyed by family: every name we can build."""
    if family != FAMILY:
        return None
    if task is not None and task not in MODEL_TASKS:
        return []
    from visiontl_example.models import VARIANTS

    return sorted(VARIANTS)


@hookimpl
def visiontl_build(request: BuildRequest) -> BuiltModel | None:
    """firstresult, keyed by family: build the model with a head for the user's classes."""
    if request.model_id.family != FAMILY:
        return None
    from visiontl_example.models import build

    return build(request)


@hookimpl
def visiontl_freeze(built: BuiltModel) -> list[LayerGroup] | None:
    """firstresult, keyed by family: describe the layer groups; the core decides the rest."""
    if built.model_id.family != FAMILY:
        return None
    from visiontl_example.models import groups

    return groups(built.model)
