"""visiontl plugin for segmentation-models-pytorch (SMP): semantic segmentation models.

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
from visiontl.contracts import PluginInfo

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
    )


@hookimpl
def visiontl_model_names(family: str, task: str | None) -> list[str] | None:
    if family != FAMILY:
        return None
    if task not in (None, TASK):
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
    if request.task != TASK:
        from visiontl.errors import PluginError

        raise PluginError(
            f"SMP models serve semantic segmentation, not '{request.task}'.",
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
