"""Named layer groups read from the YOLO model config: users never see a layer index.

An Ultralytics network is a flat ``nn.Sequential`` (``net.model.0`` ... ``net.model.22``) built
from the ``backbone`` and ``head`` lists of its config. The groups follow those lists:

* ``stem``: the first backbone layer (the stride-2 input convolution);
* ``stage1`` .. ``stageN``: each starts at a downsampling layer of the backbone (a stride-2
  ``Conv``/``GhostConv``/``DWConv``, ``ADown``, ``SCDown``, ``AConv``) and runs to the next;
* the backbone's trailing context blocks after the last stage, one group each by type:
  ``sppf`` (``SPPF``), ``spp`` (``SPP``), ``psa`` (``C2PSA``/``PSA``);
* ``neck``: every layer of the config's ``head`` list except the last (the FPN/PAN);
* ``head``: the ``Detect``/``Segment`` layer.

For YOLOv8 this gives ``stem`` (0), ``stage1`` (1-2), ``stage2`` (3-4), ``stage3`` (5-6),
``stage4`` (7-8), ``sppf`` (9), ``neck`` (10-21), ``head`` (22).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from visiontl.contracts import GroupRole, LayerGroup
from visiontl.errors import FreezeError
from visiontl.freeze.groups import groups_by_prefix

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: Context blocks that close a backbone, and the group each becomes.
TAIL_BLOCKS = {"SPPF": "sppf", "SPP": "spp", "SPPELAN": "sppf", "C2PSA": "psa", "PSA": "psa"}
_ALWAYS_DOWN = {"ADown", "AConv"}
_STRIDED = {"Conv", "GhostConv", "DWConv", "SCDown"}


def _is_downsample(module: str, args: list[Any]) -> bool:
    if module in _ALWAYS_DOWN:
        return True
    return module in _STRIDED and len(args) > 2 and args[2] == 2


def layer_plan(config: dict[str, Any]) -> list[tuple[str, GroupRole, list[int]]]:
    """``(group name, role, [layer indices])`` in input-to-output order, from a model config.

    Raises:
        FreezeError: the config has no backbone or head list.
    """
    backbone, head = config.get("backbone"), config.get("head")
    if not backbone or not head:
        raise FreezeError("The YOLO model config has no 'backbone' and 'head' lists to group its layers by.")
    plan: list[tuple[str, GroupRole, list[int]]] = []
    stage = 0
    for index, (_, _, module, args) in enumerate(backbone):
        module = str(module).split(".")[-1]
        if index == 0:
            plan.append(("stem", "stem", [index]))
        elif _is_downsample(module, args):
            stage += 1
            plan.append((f"stage{stage}", "stage", [index]))
        elif module in TAIL_BLOCKS and stage > 0 and not any(
            _is_downsample(str(m).split(".")[-1], a) for _, _, m, a in backbone[index + 1:]
        ):
            name = TAIL_BLOCKS[module]
            if plan[-1][0] == name:
                plan[-1][2].append(index)
            else:
                plan.append((name, "stage", [index]))
        else:
            plan[-1][2].append(index)
    first_head = len(backbone)
    last = first_head + len(head) - 1
    plan.append(("neck", "neck", list(range(first_head, last))))
    plan.append(("head", "head", [last]))
    return plan


def yolo_groups(model: nn.Module) -> list[LayerGroup]:
    """The layer groups of a :class:`~visiontl_ultralytics.model.YoloModel` (params ``net.model.<i>.*``)."""
    net = model.net  # type: ignore[attr-defined]
    plan = layer_plan(net.yaml)
    spec = [(name, role, [f"net.model.{i}" for i in indices]) for name, role, indices in plan]
    return groups_by_prefix(model, spec, rest=None)


def group_layers(model: nn.Module) -> dict[str, list[int]]:
    """Group name -> the Ultralytics layer indices in it (for docs and the trainer's log)."""
    return {name: indices for name, _, indices in layer_plan(model.net.yaml)}  # type: ignore[attr-defined]
