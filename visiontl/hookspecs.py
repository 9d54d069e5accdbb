"""The hooks a visiontl plugin can implement.

A plugin is a module (or object) with functions decorated by ``visiontl.hookimpl`` whose
names match the specifications below. It is found through the entry-point group
``visiontl`` (``[project.entry-points.visiontl] myplugin = "my_package"``); the built-in
plugins in ``plugins/`` are registered exactly that way.

Two kinds of hooks:

* **1:N hooks** are called on every plugin; their non-``None`` results are gathered in a
  list. A plugin declines by returning ``None`` (or ``[]``).
* **firstresult hooks** stop at the first plugin that returns something other than ``None``.
  They are *keyed by family*: a plugin answers only for the families it declared in
  ``visiontl_plugin_info`` and returns ``None`` for the rest. The core's own default
  implementations (shared training loop, generic benchmark) are registered last, so a
  family plugin that answers wins over them.

**Output contracts.** A task declares what it needs from a model (``TaskAdapter.output``, a
constant of :mod:`visiontl.contracts`): ``IMAGE_VECTOR``, an image-level vector of K outputs,
``(batch, K)``; ``DENSE_MAP``, a K-channel map, ``(batch, K, H, W)``; ``DETECTOR``, the detection
contract. A family declares the outputs its models provide for *any* task
(``PluginInfo.outputs``) and builds for every task that asks for one of them, not for a list
of task names: the request says which (``BuildRequest.output``; ``BuiltModel.output`` for the
later hooks). Built in: timm and torchvision classifiers provide ``IMAGE_VECTOR``; torchvision
segmenters (and their heads over any classifier) and SMP provide ``DENSE_MAP``; detectors
(torchvision, Ultralytics) serve the detection tasks only. A family that cannot provide a
task's output raises a ``PluginError`` saying what it provides.

Plugins *describe* (cards, groups, models); the core's engines *decide* (ranking, phases,
learning rates, BatchNorm policy, audits). Plugin modules must not import torch or their
library at import time: import inside the hook, so that ``visiontl plugins`` stays fast and
reports a missing library instead of failing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from torch import nn

    from visiontl.cards import ModelCard
    from visiontl.config.schema import Recipe
    from visiontl.contracts import (
        BenchmarkRequest,
        BenchmarkResult,
        BuildRequest,
        BuiltModel,
        LayerGroup,
        PluginInfo,
        TrainJob,
        TrainResult,
    )
    from visiontl.export.contracts import ExportArtifact, ExportRequest
    from visiontl.freeze.audit import AuditReport
    from visiontl.freeze.plan import Phase
    from visiontl.runs.layout import RunDir
    from visiontl.tasks.base import TaskAdapter

PROJECT = "visiontl"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------- describing


@hookspec
def visiontl_plugin_info() -> PluginInfo | None:
    """Describe this plugin for ``visiontl plugins`` and for routing by family.

    Called on every plugin (1:N).

    Returns:
        A :class:`~visiontl.contracts.PluginInfo` naming the families and tasks this
        plugin serves, what it requires and how to install it. Plugins that only listen to
        events may return ``None``.
    """


@hookspec
def visiontl_tasks() -> list[TaskAdapter] | None:
    """Contribute task definitions (datasets, loss, metrics, prediction for a task).

    Called on every plugin (1:N); the core contributes ``classification`` and the other
    built-in tasks this way. A task name offered twice is an error. A task declares the
    output contract it needs (``TaskAdapter.output``): every family that provides it builds
    models for the task. It also declares the direction of its metrics
    (``higher_is_better``, ``lower_is_better_metrics``) and what ``visiontl select`` ranks by
    (``selection_metric()``: published figures matched on metric and dataset, or a labelled
    proxy).

    Returns:
        A list of :class:`~visiontl.tasks.base.TaskAdapter`, or ``None``/``[]`` to decline.
    """


@hookspec
def visiontl_select(task: str) -> list[ModelCard] | None:
    """Offer catalogue cards for ``task`` to the selection engine and ``visiontl models``.

    Called on every plugin (1:N); results are concatenated. Offer cards for the tasks the
    plugin names; the core lists them for every other task of the same output as well, when
    the family declares that output in ``PluginInfo.outputs``.

    Args:
        task: the task being asked about (``classification``, ``detection`` ...).

    Returns:
        :class:`~visiontl.cards.ModelCard` objects for the models this plugin recommends for
        the task, each figure with its provenance. ``None``/``[]`` declines.
    """


@hookspec(firstresult=True)
def visiontl_model_names(family: str, task: str | None) -> list[str] | None:
    """List every model name a family can build (for ``visiontl models --all`` and
    did-you-mean on unknown ids).

    firstresult, keyed by ``family``: return ``None`` for families you do not serve.

    Args:
        family: the model-id family asked about.
        task: restrict to names that serve this task (a task the family does not know by
            name: by its output, ``visiontl.tasks.registry.output_of(task)``), or ``None``
            for all tasks.

    Returns:
        Names valid after ``family:``.
    """


# --------------------------------------------------------------------------- building


@hookspec(firstresult=True)
def visiontl_build(request: BuildRequest) -> BuiltModel | None:
    """Build a model with a new head for the user's classes.

    firstresult, keyed by ``request.model_id.family``. Build for every task whose output
    contract (``request.output``) the family provides, with ``request.num_classes`` outputs;
    raise a ``PluginError`` naming what the family provides otherwise. To build a model of
    another family inside yours (a backbone), call
    ``visiontl.plugin_manager.build_with_groups(request)``.

    Args:
        request: model id, task, output contract, number of classes (K), weights wanted and
            family options.

    Returns:
        A :class:`~visiontl.contracts.BuiltModel` (model, preprocessing, weights report).

    Raises:
        UnknownModelError: the family does not know the name (use ``visiontl.ids.unknown_model``).
        WeightsError: weights were asked for and cannot be had; must fail within seconds
            when offline, naming the model, the source tried and the fix.
    """


@hookspec(firstresult=True)
def visiontl_freeze(built: BuiltModel) -> list[LayerGroup] | None:
    """Describe the model as ordered, named layer groups (input side first, head last).

    firstresult, keyed by ``built.model_id.family`` (``built.output`` says which output the
    model was built for). The plugin only describes; the core's freezing engine sets
    ``requires_grad``, learning rates and BatchNorm modes.

    Args:
        built: what ``visiontl_build`` returned.

    Returns:
        :class:`~visiontl.contracts.LayerGroup` objects that cover every parameter of
        ``built.model`` exactly once, ordered from input to output, with at least one group
        whose role is ``head``.
    """


# --------------------------------------------------------------------------- running


@hookspec(firstresult=True)
def visiontl_train(job: TrainJob) -> TrainResult | None:
    """Train the model through the job's plan of phases.

    firstresult. The core registers the shared PyTorch loop as the last implementation, so
    a family plugin implements this only when its library brings its own trainer (and then
    drives that trainer with the plan: phases, per-group learning rates, BatchNorm policy,
    audits, events). Return ``None`` for families you do not train yourself.

    Args:
        job: recipe, built model, groups, plan, task adapter, run directory, event emitter.

    Returns:
        A :class:`~visiontl.contracts.TrainResult`.
    """


@hookspec(firstresult=True)
def visiontl_benchmark(
    model: nn.Module, built: BuiltModel | None, request: BenchmarkRequest
) -> BenchmarkResult | None:
    """Measure latency, throughput, size and memory of a model.

    firstresult. The core registers a generic PyTorch harness last; a family implements
    this only when its models need their own path (e.g. a different forward signature).

    Args:
        model: the module to measure.
        built: its build metadata when known (family, preprocessing), else ``None``.
        request: input size, batch size, device, threads, precision, repeats.

    Returns:
        A :class:`~visiontl.contracts.BenchmarkResult` with every field of
        ``BenchmarkResult.REQUIRED_FIELDS`` set.
    """


# --------------------------------------------------------------------------- events


@hookspec(firstresult=True)
def visiontl_export(model: nn.Module, request: ExportRequest) -> ExportArtifact | None:
    """Export ``model`` with the family's own exporter.

    firstresult, keyed by the family of ``request.model_id``: return ``None`` for families you
    do not serve, and the core exports the model generically (torch.onnx, OpenVINO's converter,
    torch.jit). Implement it when the family's library exports better (Ultralytics: its own
    exporter, post-processing kept in Python).

    Args:
        model: the trained model (eval mode, CPU).
        request: format, precision, destination, model facts and calibration images.

    Returns:
        An :class:`~visiontl.export.contracts.ExportArtifact` (files written, manifest written,
        a loader that runs the export under the task's eval contract).

    Raises:
        ExportError: the family cannot export this format or precision (say which it can).
    """


@hookspec
def visiontl_on_run_start(run: RunDir, recipe: Recipe) -> None:
    """A run is about to train (its directory, resolved recipe and plan are written).

    Called on every plugin (1:N), on rank 0 only; return values are ignored. Loggers open
    their writers here.

    Args:
        run: the run directory.
        recipe: the validated recipe.
    """


@hookspec
def visiontl_on_run_end(run: RunDir, summary: dict[str, Any]) -> None:
    """A run finished: summary.json, report.md and the plots are written.

    Called on every plugin (1:N), on rank 0 only; return values are ignored. Loggers log the
    final figures and close their writers here.

    Args:
        run: the run directory.
        summary: the content of summary.json.
    """


@hookspec
def visiontl_on_phase_start(run: RunDir, phase: Phase, index: int) -> None:
    """A training phase is about to start (after its freezing was applied).

    Called on every plugin (1:N); return values are ignored. Loggers and callbacks
    implement the event hooks.

    Args:
        run: the run directory.
        phase: the phase (name, trainable groups, learning rates, epochs, BN policy).
        index: 0-based index of the phase in the plan.
    """


@hookspec
def visiontl_on_epoch_end(
    run: RunDir, phase: Phase, epoch: int, metrics: dict[str, Any]
) -> None:
    """An epoch finished and was evaluated.

    Called on every plugin (1:N); return values are ignored.

    Args:
        run: the run directory.
        phase: the current phase.
        epoch: 1-based global epoch number.
        metrics: the epoch's row (train loss, validation metrics, learning rates, seconds).
    """


@hookspec
def visiontl_on_phase_end(run: RunDir, phase: Phase, index: int, audit: AuditReport) -> None:
    """A training phase ended and its freeze audit passed.

    Called on every plugin (1:N); return values are ignored.

    Args:
        run: the run directory.
        phase: the phase that ended.
        index: 0-based index of the phase in the plan.
        audit: what the freeze audit checked (tensors compared, all unchanged).
    """
