"""The core's own hook implementations: built-in tasks and the default trainer and benchmark.

Registered first, so pluggy calls them last: a family plugin that implements
``visiontl_train`` or ``visiontl_benchmark`` for its models answers before these defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visiontl.contracts import PluginInfo
from visiontl.hookspecs import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl.contracts import (
        BenchmarkRequest,
        BenchmarkResult,
        BuiltModel,
        TrainJob,
        TrainResult,
    )
    from visiontl.tasks.base import TaskAdapter


@hookimpl
def visiontl_plugin_info() -> PluginInfo:
    return PluginInfo(
        name="core",
        families=(),
        tasks=BUILTIN_TASK_NAMES,
        description="built-in tasks, the shared training loop and the generic benchmark harness",
    )


#: The built-in tasks: (module, factory attribute). Each factory returns a list of adapters.
BUILTIN_TASKS: tuple[tuple[str, str], ...] = (
    ("visiontl.tasks.classification", "tasks"),
    ("visiontl.tasks.detection", "tasks"),
    ("visiontl.tasks.segmentation", "tasks"),
)


#: What BUILTIN_TASKS provide (listed by ``visiontl plugins`` without importing them).
BUILTIN_TASK_NAMES = ("classification", "detection", "instance_segmentation", "segmentation")


@hookimpl
def visiontl_tasks() -> list[TaskAdapter]:
    import importlib

    adapters: list[TaskAdapter] = []
    for module, factory in BUILTIN_TASKS:
        adapters += getattr(importlib.import_module(module), factory)()
    return adapters


@hookimpl(trylast=True)
def visiontl_train(job: TrainJob) -> TrainResult:
    from visiontl.train.loop import SharedTrainingLoop

    return SharedTrainingLoop(job).run()


@hookimpl(trylast=True)
def visiontl_benchmark(model: nn.Module, built: BuiltModel | None, request: BenchmarkRequest) -> BenchmarkResult:
    from visiontl.benchmark.harness import benchmark_module

    model_id = str(built.model_id) if built is not None else type(model).__name__
    return benchmark_module(model, model_id, request)
