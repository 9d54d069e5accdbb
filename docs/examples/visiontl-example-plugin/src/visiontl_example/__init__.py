"""An example third-party visiontl plugin: a new task and a new model family.

* the task ``multilabel``: any number of labels per image (tagging), read from a CSV of
  ``path,labels``; sigmoid outputs, binary cross-entropy, mean average precision
  (:mod:`visiontl_example.task`). Its output contract is an image-level vector
  (``IMAGE_VECTOR``: one logit per class), so it also trains over every built-in family that
  provides one (``timm:resnet10t``, ``torchvision:squeezenet1_1`` ...), with no code here;
* the family ``tinycnn``: three small plain CNNs defined here (``tinycnn:nano``,
  ``tinycnn:micro``, ``tinycnn:small``), for every task that wants an image-level vector
  (``classification``, ``multilabel``, another plugin's regression ...), with catalogue cards
  (parameters, MAC profile) in ``catalogue.json`` (:mod:`visiontl_example.models`,
  :mod:`visiontl_example.catalogue`).

visiontl finds this module through the entry point in ``pyproject.toml``::

    [project.entry-points.visiontl]
    example = "visiontl_example"

Every hook below imports what it needs inside the function: importing this module costs
nothing (no torch), so ``visiontl plugins`` and ``visiontl select`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visiontl import hookimpl
from visiontl.contracts import IMAGE_VECTOR, PluginInfo

if TYPE_CHECKING:  # pragma: no cover - typing only
    from visiontl.cards import ModelCard
    from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup
    from visiontl.tasks.base import TaskAdapter

__version__ = "0.1.0"

FAMILY = "tinycnn"
TASK = "multilabel"
#: The tasks tinycnn cards list: both want (batch, classes) logits. tinycnn models serve every
#: other task whose output contract is IMAGE_VECTOR too (see :func:`serves`).
MODEL_TASKS = ("classification", TASK)


def serves(task: str | None, output: str = "") -> bool:
    """Whether tinycnn models serve ``task``: any task that wants an image-level vector.

    ``output`` is the request's (``BuildRequest.output``); ``output_of`` falls back to the
    registered task's declared output when a caller did not say.
    """
    from visiontl.tasks.registry import output_of

    return task is None or task in MODEL_TASKS or output_of(task, output) == IMAGE_VECTOR


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
        # tinycnn models give an image-level vector for any task that asks for one: visiontl
        # select and models offer them for such tasks of other plugins too.
        outputs=(IMAGE_VECTOR,),
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
    if not serves(task):
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
