"""Which torchvision module builds for a task: by the task's name, else by its output contract.

torchvision classifiers give an image-level vector (``IMAGE_VECTOR``) and its segmenters a
dense map (``DENSE_MAP``) for *any* task that asks for one: a regression or multi-label task
of another plugin trains over ``torchvision:squeezenet1_1``, a depth or saliency task over
``torchvision:deeplabv3_mobilenet_v3_large``, with the same build, weights, layer groups and
feature split as classification and segmentation. Detectors stay with the detection tasks
(their targets are part of the detection contract). Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping

from visiontl.contracts import DENSE_MAP, IMAGE_VECTOR, OUTPUT_KINDS
from visiontl.errors import PluginError

#: Output contract -> the module that builds it for a task torchvision does not know by name.
OUTPUT_MODULES: dict[str, str] = {
    IMAGE_VECTOR: "visiontl_torchvision.classification",
    DENSE_MAP: "visiontl_torchvision.segmentation",
}
#: What ``PluginInfo.outputs`` declares.
OUTPUTS = tuple(OUTPUT_MODULES)


def module_name(task: str | None, output: str, task_modules: Mapping[str, str]) -> str | None:
    """The module serving ``task``: its own (``task_modules``) when torchvision knows the task
    by name, else the one that builds the task's output (``output``, or the registered task's
    declared one), else ``None``.

    Example:
        >>> module_name("classification", "", {"classification": "m.cls"})
        'm.cls'
        >>> module_name("my_regression", "image_vector", {})
        'visiontl_torchvision.classification'
    """
    if task is None:
        return None
    if task in task_modules:
        return task_modules[task]
    from visiontl.tasks.registry import output_of

    return OUTPUT_MODULES.get(output_of(task, output))


def refusal(task: str, output: str, tasks: tuple[str, ...]) -> PluginError:
    """The error for a task whose output torchvision does not build, saying what it builds."""
    from visiontl.tasks.registry import find_task, output_of

    needs = output_of(task, output)
    if needs:
        what = f"needs {OUTPUT_KINDS.get(needs, repr(needs))}"
    elif find_task(task) is None:
        what = "is not a task an installed plugin defines"
    else:
        what = "declares no output contract (TaskAdapter.output)"
    provided = " or ".join(OUTPUT_KINDS[o].split(",")[0] for o in OUTPUTS)
    return PluginError(
        f"torchvision models serve {', '.join(tasks)}, and any task that needs {provided}; task '{task}' {what}.",
        fix=f"pick a model of a family that serves {task} (see: visiontl models --task {task})"
        + ("" if needs else f", or declare the output '{task}' needs (e.g. output = visiontl.contracts.IMAGE_VECTOR)"),
    )


__all__ = ["OUTPUTS", "OUTPUT_MODULES", "module_name", "refusal"]
