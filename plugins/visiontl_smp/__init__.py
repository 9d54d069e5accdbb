"""visiontl plugin for segmentation-models-pytorch (SMP): semantic segmentation models, for
``segmentation`` and every task whose output is a dense K-channel map (``DENSE_MAP``).

* ``smp:<architecture>-<encoder>``: ``smp:unet-resnet34``, ``smp:deeplabv3plus-mobilenet_v2``,
  ``smp:unet-tu-efficientnet_b0`` (any timm model as a universal encoder), for the
  architectures the installed SMP offers (Unet, UnetPlusPlus, FPN, PSPNet, DeepLabV3,
  DeepLabV3Plus, Linknet, MAnet, PAN, UPerNet, Segformer, DPT).
* Encoder weights: SMP's / timm's published weights (``pretrained: true``; cached files
  offline, a clear error in seconds when neither cached nor reachable), a local file, or the
  backbone of a visiontl classification checkpoint.
* Layer groups: encoder stages by output stride (``stem``, ``stage1..4``), ``decoder``, ``head``;
  the core's BN policy and freeze audit apply per stage (SMP's own ``freeze_encoder`` is
  all-or-nothing).

Nothing here imports torch or SMP at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visiontl import hookimpl
from visiontl.contracts import DENSE_MAP, PluginInfo

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.cards import ModelCard
    from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup

FAMILY = "smp"
TASK = "segmentation"


@hookimpl
def visiontl_plugin_info() -> PluginInfo:
    return PluginInfo(
        name="smp",
        families=(FAMILY,),
        tasks=(TASK,),
        requires=("segmentation-models-pytorch>=0.3.3", "timm>=0.9"),
        install_hint="pip install 'visiontl[smp]'",
        description="segmentation-models-pytorch architectures over SMP and timm encoders, grouped by encoder stage",
        outputs=(DENSE_MAP,),
    )


def _serves(task: str | None, output: str = "") -> bool:
    """Whether SMP models serve ``task``: segmentation, or any task asking for a dense map."""
    from visiontl.tasks.registry import output_of

    return task in (None, TASK) or output_of(task, output) == DENSE_MAP


@hookimpl
def visiontl_model_names(family: str, task: str | None) -> list[str] | None:
    if family != FAMILY:
        return None
    if not _serves(task):
        return []
    from visiontl_smp.ids import available_architectures, smp_encoders

    # tu-<any timm model> is valid too; listing every timm model per architecture would drown
    # the list, so one example per architecture stands for them.
    names = [f"{a}-{e}" for a in available_architectures() for e in smp_encoders()]
    return names + [f"{a}-tu-efficientnet_b0" for a in available_architectures()]


@hookimpl
def visiontl_select(task: str) -> list[ModelCard] | None:
    if task != TASK:
        return None
    from visiontl_smp.catalogue import cards

    return list(cards())


@hookimpl
def visiontl_build(request: BuildRequest) -> BuiltModel | None:
    if request.model_id.family != FAMILY:
        return None
    if not _serves(request.task, request.output):
        from visiontl.errors import PluginError

        raise PluginError(
            f"SMP models give a dense K-channel map (semantic segmentation and any task of dense outputs), not the output task '{request.task}' needs.",
            fix=f"set task: segmentation, or pick a model of a family that serves {request.task} (see: visiontl models --task {request.task})",
        )
    from visiontl_smp.build import build

    return build(request)


@hookimpl
def visiontl_freeze(built: BuiltModel) -> list[LayerGroup] | None:
    if built.model_id.family != FAMILY:
        return None
    from visiontl_smp.groups import smp_groups

    return smp_groups(built.model)
