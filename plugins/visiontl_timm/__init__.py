"""visiontl plugin for timm (PyTorch Image Models): any timm model id, for every task whose
models give an image-level vector (classification, and any plugin's task whose output is
``IMAGE_VECTOR``: a regression, multi-label tagging ...).

* ``timm:<name>`` or ``timm:<name>.<pretrained tag>`` (``timm:resnet50.a1_in1k``).
* The head has ``num_classes`` outputs (K: classes, or a regression's targets); dense-map and
  detection tasks get a clear error (timm backbones serve them through ``smp:<arch>-tu-<name>``
  or ``torchvision:deeplabv3`` with ``options.backbone``).
* ``pretrained: true`` loads through timm's own hub code (Hugging Face Hub or URL, with its
  cache); when the weights are not cached and the host is unreachable it fails in seconds.
* ``weights: PATH`` loads a local state_dict or checkpoint; a mismatched head is re-initialised.
* Layer groups come from timm's ``group_matcher``: ``stem``, ``stage1..N``, ``head``.

Nothing here imports torch or timm at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from visiontl import hookimpl
from visiontl.contracts import IMAGE_VECTOR, PluginInfo

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.cards import ModelCard
    from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup

FAMILY = "timm"
TASK = "classification"


@hookimpl
def visiontl_plugin_info() -> PluginInfo:
    return PluginInfo(
        name="timm",
        families=(FAMILY,),
        tasks=(TASK,),
        requires=("timm>=0.9",),
        install_hint="pip install 'visiontl[timm]'",
        description="every timm image model, with timm's group_matcher layer groups, for any task of image-level outputs",
        outputs=(IMAGE_VECTOR,),
    )


def _serves(task: str | None, output: str = "") -> bool:
    """Whether timm models serve ``task``: classification, any task asking for an image vector,
    and (as before output contracts) a task that declares no output at all."""
    from visiontl.tasks.registry import output_of

    return task in (None, TASK) or output_of(task, output) in (IMAGE_VECTOR, "")


@hookimpl
def visiontl_model_names(family: str, task: str | None) -> list[str] | None:
    if family != FAMILY:
        return None
    if not _serves(task):
        return []
    import timm

    return sorted(set(timm.list_models()) | set(timm.list_models(pretrained=True)))


@hookimpl
def visiontl_select(task: str) -> list[ModelCard] | None:
    if task != TASK:
        return None
    from visiontl_timm.catalogue import cards

    return cards()


def _check_name(request: BuildRequest) -> None:
    import timm
    from timm.models import is_model, split_model_name_tag

    from visiontl.ids import unknown_model

    arch, _tag = split_model_name_tag(request.model_id.name)
    if not is_model(arch):
        raise unknown_model(request.model_id, timm.list_models())


def _preprocessing(model: Any) -> Any:
    from timm.data import resolve_data_config

    from visiontl.contracts import Preprocessing

    cfg = resolve_data_config({}, model=model)
    _, h, w = cfg["input_size"]
    return Preprocessing(
        input_size=(int(h), int(w)),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        interpolation=str(cfg.get("interpolation", "bilinear")),
        crop_pct=float(cfg.get("crop_pct", 0.875)),
    )


@hookimpl
def visiontl_build(request: BuildRequest) -> BuiltModel | None:
    if request.model_id.family != FAMILY:
        return None
    import timm

    from visiontl.contracts import BuiltModel, FeatureSplit, WeightsReport
    from visiontl.errors import ConfigError
    from visiontl.weights import load_matching, read_state_dict
    from visiontl_timm.hub import pretrained_model

    _check_name(request)
    if not _serves(request.task, request.output):
        from visiontl.contracts import OUTPUT_KINDS
        from visiontl.errors import PluginError
        from visiontl.tasks.registry import output_of

        needs = output_of(request.task, request.output)
        raise PluginError(
            f"timm models give an image-level vector of K outputs; task '{request.task}' needs {OUTPUT_KINDS.get(needs, repr(needs))}.",
            fix=f"use a family that provides it for {request.task} (see: visiontl models --task {request.task}); timm "
            "backbones serve dense maps through smp:<arch>-tu-<name> or torchvision:deeplabv3 with options.backbone",
        )
    name = request.model_id.name
    options = dict(request.options)
    try:
        if request.weights is not None:
            model = timm.create_model(name, pretrained=False, num_classes=request.num_classes, **options)
            report = load_matching(model, read_state_dict(request.weights), f"file:{request.weights}")
        elif request.pretrained:
            model, report = pretrained_model(request, options)
        else:
            model = timm.create_model(name, pretrained=False, num_classes=request.num_classes, **options)
            report = WeightsReport(source="random")
    except TypeError as exc:
        raise ConfigError(
            f"model.options for '{request.model_id}' were rejected by timm: {exc}.",
            fix="use keyword arguments of timm.create_model (e.g. drop_rate, drop_path_rate)",
        ) from None
    return BuiltModel(
        model=model,
        model_id=request.model_id,
        task=request.task,
        preprocessing=_preprocessing(model),
        weights=report,
        split=FeatureSplit(features=model.forward_features, head=model.forward_head),
    )


@hookimpl
def visiontl_freeze(built: BuiltModel) -> list[LayerGroup] | None:
    if built.model_id.family != FAMILY:
        return None
    from visiontl_timm.groups import timm_groups

    return timm_groups(built.model)
