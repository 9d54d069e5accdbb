"""visiontl plugin for Ultralytics YOLO: YOLOv8 (and YOLO11) detection and instance segmentation.

* ``ultralytics:yolov8n`` .. ``yolov8x`` (detection), ``ultralytics:yolov8n-seg`` ..
  ``yolov8x-seg`` (instance segmentation), plus the other detect/segment configs Ultralytics
  ships for them (``-p2``, ``-p6``, ``-ghost``; ``yolo11n`` ..): see :mod:`.names`.
* Built from the model config with a new head for the user's classes; ``pretrained: true``
  loads the published COCO weights (local first, then Ultralytics' downloader after a bounded
  probe); ``weights: PATH`` loads an Ultralytics checkpoint or a state_dict (:mod:`.build`).
* Named groups ``stem, stage1..4, sppf, neck, head`` read from the config (:mod:`.groups`).
* Trained by Ultralytics' own trainer, driven by the visiontl plan: one Ultralytics training per
  phase, visiontl's optimizer groups, frozen groups kept frozen (gradients and BatchNorm
  statistics), the freeze audit, visiontl's evaluator and run layout (:mod:`.trainer`).
* Offline-safe: Ultralytics makes no network call on its own (:mod:`.offline`).

Nothing here imports torch or Ultralytics at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visiontl import hookimpl
from visiontl.contracts import PluginInfo
from visiontl_ultralytics.names import TASKS

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl.cards import ModelCard
    from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup, TrainJob, TrainResult
    from visiontl.export.contracts import ExportArtifact, ExportRequest

FAMILY = "ultralytics"


@hookimpl
def visiontl_plugin_info() -> PluginInfo:
    return PluginInfo(
        name="ultralytics",
        families=(FAMILY,),
        tasks=TASKS,
        requires=("ultralytics>=8.1",),
        install_hint="pip install 'visiontl[ultralytics]'",
        description="Ultralytics YOLOv8/YOLO11 detection and instance segmentation, trained by Ultralytics' trainer under the visiontl plan",
    )


@hookimpl
def visiontl_model_names(family: str, task: str | None) -> list[str] | None:
    if family != FAMILY:
        return None
    from visiontl_ultralytics.names import model_names

    return model_names(task)


@hookimpl
def visiontl_select(task: str) -> list[ModelCard] | None:
    if task not in TASKS:
        return None
    from visiontl_ultralytics.catalogue import cards

    return [c for c in cards() if task in c.tasks]


@hookimpl
def visiontl_build(request: BuildRequest) -> BuiltModel | None:
    if request.model_id.family != FAMILY:
        return None
    if request.task not in TASKS:
        from visiontl.contracts import OUTPUT_KINDS
        from visiontl.errors import PluginError
        from visiontl.tasks.registry import output_of

        # Detectors stay with the detection tasks: their targets are part of the contract.
        needs = output_of(request.task, request.output)
        raise PluginError(
            f"Ultralytics models are detectors for the tasks {', '.join(TASKS)}, not '{request.task}'"
            + (f" (which needs {OUTPUT_KINDS.get(needs, needs)})." if needs else "."),
            fix="pick a model id of a family that serves this task (see: visiontl models --task " + request.task + ")",
        )
    from visiontl_ultralytics.build import build

    return build(request)


@hookimpl
def visiontl_freeze(built: BuiltModel) -> list[LayerGroup] | None:
    if built.model_id.family != FAMILY:
        return None
    from visiontl_ultralytics.groups import yolo_groups

    return yolo_groups(built.model)


@hookimpl
def visiontl_train(job: TrainJob) -> TrainResult | None:
    if job.built.model_id.family != FAMILY:
        return None
    from visiontl_ultralytics.trainer import train

    return train(job)


@hookimpl
def visiontl_export(model: nn.Module, request: ExportRequest) -> ExportArtifact | None:
    """YOLO models export through Ultralytics' own exporter (see :mod:`.export`)."""
    if not request.model_id.startswith(f"{FAMILY}:"):
        return None
    from visiontl_ultralytics.export import export

    return export(model, request)
