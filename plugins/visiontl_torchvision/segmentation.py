"""torchvision semantic segmentation: the stock models, and heads over any classifier.

They serve ``segmentation`` and every task whose output contract is a dense K-channel map
(``DENSE_MAP``: depth, saliency, a plugin's per-pixel task), with ``num_classes`` (K) output
channels.

Stock models (``torchvision:<builder>``): ``deeplabv3_resnet50``, ``deeplabv3_resnet101``,
``deeplabv3_mobilenet_v3_large``, ``lraspp_mobilenet_v3_large``, ``fcn_resnet50``,
``fcn_resnet101``, built for the user's classes. Weights:

* ``model.pretrained: true``: torchvision's COCO (VOC labels) weights, from the torch hub
  cache or downloaded (a WeightsError within seconds when neither); the final classifier
  layers are re-initialised for the user's classes (kept when there are 21);
* ``model.options.weights_backbone: true`` (or an enum name such as ``IMAGENET1K_V2``): only
  the ImageNet backbone;
* ``model.weights: PATH``: a whole-model state dict, or a backbone's (a torchvision
  classifier's state dict or visiontl classification checkpoint: ``features.N`` and ResNet keys
  are mapped onto ``backbone.``).

Auxiliary classifiers are off by default; ``model.options.aux_loss: true`` keeps FCN/DeepLabV3's
and adds its loss with weight 0.5 in training (its output is not used for evaluation).

Heads over any classifier (``torchvision:deeplabv3``, ``torchvision:fcn``) with
``model.options.backbone: <classifier id>``: see :mod:`visiontl_torchvision.segmentation_backbones`.
``model.weights`` then loads into the backbone (e.g. the SqueezeNet 1.1 ImageNet features
file), unless it is a whole-model state dict (a visiontl segmentation checkpoint). Options:
``channels`` (DeepLabV3 head width, 256), ``atrous_rates`` ([6, 12, 18], for output stride
16 backbones), ``backbone_options`` (the classifier's own build options).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl.cards import ModelCard
    from visiontl.contracts import (
        BuildRequest,
        BuiltModel,
        LayerGroup,
        Preprocessing,
        WeightsReport,
    )

#: Stock builders -> the ImageNet classifier their backbone is.
STOCK: dict[str, str] = {
    "deeplabv3_resnet50": "resnet50",
    "deeplabv3_resnet101": "resnet101",
    "deeplabv3_mobilenet_v3_large": "mobilenet_v3_large",
    "lraspp_mobilenet_v3_large": "mobilenet_v3_large",
    "fcn_resnet50": "resnet50",
    "fcn_resnet101": "resnet101",
}
#: Heads that go over ``options.backbone``.
HEADS = ("deeplabv3", "fcn")

_STOCK_OPTIONS = ("weights", "weights_backbone", "aux_loss")
_HEAD_OPTIONS = ("backbone", "backbone_options", "channels", "atrous_rates")
#: Default input size when the weights say none (multiple of 32).
DEFAULT_SIZE = (256, 256)


def model_names(task: str = "segmentation") -> list[str]:
    """The stock builders and the heads over a classifier."""
    return [*STOCK, *HEADS]


def cards(task: str = "segmentation") -> list[ModelCard]:
    """Cards of the stock models, figures from torchvision's weight metadata."""
    from visiontl_torchvision.segmentation_catalogue import segmentation_cards

    return list(segmentation_cards())


def groups(built: BuiltModel) -> list[LayerGroup]:
    """Layer groups computed at build time (they need the classifier the backbone came from)."""
    from visiontl.freeze.apply import check_groups

    found = built.extras.get("groups")
    if not found:
        from visiontl_torchvision.segmentation_groups import stock_groups

        found = stock_groups(built.model, STOCK[built.model_id.name])
    check_groups(built.model, found)
    return list(found)


def build(request: BuildRequest) -> BuiltModel:
    """Build a stock model or a head over a classifier for ``request.num_classes`` classes.

    Raises:
        UnknownModelError: unknown name (did-you-mean).
        ConfigError: unknown or invalid options.
        WeightsError: weights that cannot be had or do not fit.
    """
    from visiontl.ids import unknown_model

    name = request.model_id.name
    if name in STOCK:
        return _build_stock(request)
    if name in HEADS:
        return _build_head(request)
    raise unknown_model(request.model_id, model_names())


def _check_options(request: BuildRequest, allowed: tuple[str, ...]) -> None:
    from visiontl.ids import suggest

    for key in request.options:
        if key not in allowed:
            close = suggest(key, allowed, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"model.options.{key} is not an option of '{request.model_id}'.{hint} Valid: {', '.join(allowed)}.",
                fix=f"remove or correct model.options.{key}",
            )


# --------------------------------------------------------------------------- stock models


def _hub_state(enum: Any, model_id: str) -> dict[str, Any]:
    """torchvision's published state dict: from the torch hub cache, or downloaded when the
    host answers; a WeightsError within seconds otherwise."""
    import torch

    from visiontl.weights import require_reachable
    from visiontl_torchvision.weights import cache_file

    url = str(enum.url)
    cached = cache_file(url)
    fix = f"copy {cached.name} (from {url}) into {cached.parent}, or set model.weights to a local file, or model.pretrained: false for '{model_id}'"
    if not cached.is_file():
        require_reachable(url, model_id, fix)
    try:
        return dict(torch.hub.load_state_dict_from_url(url, progress=False, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any download/read failure becomes one clear message
        raise WeightsError(f"Loading torchvision weights {enum} for '{model_id}' failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}", fix=fix) from None


def _backbone_enum(request: BuildRequest, choice: Any) -> Any:
    from visiontl.ids import ModelId
    from visiontl_torchvision.weights import weights_enum

    classifier = ModelId("torchvision", STOCK[request.model_id.name])
    return weights_enum(classifier, "DEFAULT" if choice is True else str(choice))


def _stock_key_map(own: set[str]) -> Any:
    """Whole-model keys as they are; a classifier's keys onto ``backbone.`` (ResNet names, or
    MobileNet's ``features.N`` as ``backbone.N``)."""

    def key_map(key: str) -> str | None:
        for candidate in (key, f"backbone.{key}", "backbone." + key.removeprefix("features.")):
            if candidate in own:
                return candidate
        return None

    return key_map


def _build_stock(request: BuildRequest) -> BuiltModel:
    import torchvision

    from visiontl.contracts import BuiltModel, WeightsReport
    from visiontl.weights import load_matching, read_state_dict
    from visiontl_torchvision.segmentation_nets import LRASPPLogits, SimpleSegmentationLogits
    from visiontl_torchvision.weights import cache_file, weights_enum

    _check_options(request, _STOCK_OPTIONS)
    name, model_id = request.model_id.name, str(request.model_id)
    options = dict(request.options)
    lraspp = name.startswith("lraspp")
    aux = bool(options.get("aux_loss", False))
    if aux and lraspp:
        raise ConfigError(f"'{model_id}' has no auxiliary classifier.", fix="remove model.options.aux_loss")
    choice = options.get("weights")
    enum = weights_enum(request.model_id, choice) if choice is not None else None
    use_hub = request.pretrained and request.weights is None
    if use_hub and enum is None:
        enum = weights_enum(request.model_id)
    backbone_enum = None
    if options.get("weights_backbone") and not use_hub and request.weights is None:
        backbone_enum = _backbone_enum(request, options["weights_backbone"])
        url = str(backbone_enum.url)
        if not cache_file(url).is_file():
            from visiontl.weights import require_reachable

            require_reachable(url, model_id, f"copy {cache_file(url).name} into {cache_file(url).parent}, or drop model.options.weights_backbone")
    kwargs: dict[str, Any] = {"weights": None, "num_classes": request.num_classes, "weights_backbone": backbone_enum, "progress": False}
    if not lraspp:
        kwargs["aux_loss"] = aux
    try:
        raw = torchvision.models.get_model(name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a failed backbone download is the only way this fails
        raise WeightsError(f"Building '{model_id}' with backbone weights {backbone_enum} failed: {type(exc).__name__}: {exc}", fix="drop model.options.weights_backbone") from None
    model = LRASPPLogits(raw) if lraspp else SimpleSegmentationLogits(raw)
    own = set(model.state_dict())
    report: WeightsReport
    if request.weights is not None:
        report = load_matching(model, read_state_dict(request.weights), f"file:{request.weights}", key_map=_stock_key_map(own))
    elif use_hub:
        report = load_matching(model, _hub_state(enum, model_id), f"pretrained:torchvision:{enum}")
    elif backbone_enum is not None:
        missing = [k for k in own if not k.startswith("backbone.") and not k.endswith("num_batches_tracked")]
        backbone: Any = model.backbone
        report = WeightsReport(source=f"pretrained-backbone:torchvision:{backbone_enum}", loaded=len(backbone.state_dict()), missing=missing)
    else:
        report = WeightsReport(source="random")
    return BuiltModel(
        model=model,
        model_id=request.model_id,
        task=request.task,
        preprocessing=_preprocessing(enum),
        weights=report,
        extras={"weights_enum": str(enum)} if enum is not None else {},
    )


def _preprocessing(enum: Any) -> Preprocessing:
    """ImageNet statistics; the weights' training size (520) when they are known."""
    from visiontl.contracts import Preprocessing

    if enum is None:
        return Preprocessing(input_size=DEFAULT_SIZE, crop_pct=1.0)
    transform = enum.transforms()
    resize = getattr(transform, "resize_size", None) or [DEFAULT_SIZE[0]]
    side = int(resize[0]) if isinstance(resize, (list, tuple)) else int(resize)
    mean = tuple(float(v) for v in transform.mean)
    std = tuple(float(v) for v in transform.std)
    return Preprocessing(input_size=(side, side), mean=(mean[0], mean[1], mean[2]), std=(std[0], std[1], std[2]), crop_pct=1.0)


# --------------------------------------------------------------------------- heads


def _whole_model_file(path: Path) -> bool:
    """Whether ``path`` holds a whole segmentation model (not a backbone's weights)."""
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - unreadable files are reported by the loader that follows
        return False
    if isinstance(obj, dict) and obj.get("format") == "visiontl-checkpoint":
        # A run of any dense-map task (segmentation, or a plugin's) holds a whole model; a
        # classifier's run holds a backbone.
        from visiontl.contracts import DENSE_MAP
        from visiontl.tasks.registry import output_of

        return output_of(str(obj.get("task") or "")) == DENSE_MAP
    from visiontl.weights import read_state_dict

    keys = list(read_state_dict(path))
    return any(k.startswith(("head.", "backbone.")) for k in keys)


def _build_head(request: BuildRequest) -> BuiltModel:
    from visiontl.contracts import BuiltModel, LayerGroup, Preprocessing
    from visiontl.weights import load_matching
    from visiontl_torchvision.segmentation_backbones import build_classifier, cut_backbone
    from visiontl_torchvision.segmentation_nets import SegmentationNet, deeplab_head, fcn_head

    _check_options(request, _HEAD_OPTIONS)
    model_id = str(request.model_id)
    options = dict(request.options)
    backbone_id = options.get("backbone")
    if not backbone_id:
        raise ConfigError(
            f"'{model_id}' is a head: model.options.backbone names the classifier it goes over.",
            fix="e.g. model.options.backbone: torchvision:squeezenet1_1 (or timm:resnet18), or use a stock model such as torchvision:deeplabv3_resnet50",
        )
    whole = request.weights is not None and _whole_model_file(request.weights)
    backbone_weights = None if whole else request.weights
    backbone_options = options.get("backbone_options") or {}
    if not isinstance(backbone_options, dict):
        raise ConfigError("model.options.backbone_options must be a mapping of the backbone's build options.")
    built, classifier_groups = build_classifier(str(backbone_id), request.pretrained and request.weights is None, backbone_weights, backbone_options)
    backbone = cut_backbone(built, classifier_groups, str(backbone_id))
    if request.model_id.name == "deeplabv3":
        rates = options.get("atrous_rates", [6, 12, 18])
        channels = int(options.get("channels", 256))
        if not isinstance(rates, (list, tuple)) or not rates or not all(isinstance(r, int) and r > 0 for r in rates):
            raise ConfigError("model.options.atrous_rates must be a list of positive integers, e.g. [6, 12, 18].")
        head = deeplab_head(backbone.channels, request.num_classes, channels, rates)
    else:
        if "channels" in options or "atrous_rates" in options:
            raise ConfigError("model.options.channels / atrous_rates are options of torchvision:deeplabv3, not fcn.", fix="remove them")
        head = fcn_head(backbone.channels, request.num_classes)
    model = SegmentationNet(backbone.module, head)
    layer_groups = [LayerGroup(g.name, g.role, tuple(f"backbone.{p}" for p in g.params)) for g in backbone.groups]
    layer_groups.append(LayerGroup("head", "head", tuple(f"head.{n}" for n, _ in head.named_parameters())))
    report = _head_report(model, built.weights, backbone.module, backbone.prefix)
    if whole:
        assert request.weights is not None
        report = load_matching(model, _read_whole(request.weights), f"file:{request.weights}")
    pre = built.preprocessing
    return BuiltModel(
        model=model,
        model_id=request.model_id,
        task=request.task,
        preprocessing=Preprocessing(input_size=DEFAULT_SIZE, mean=pre.mean, std=pre.std, interpolation=pre.interpolation, crop_pct=1.0),
        weights=report,
        extras={"groups": layer_groups, "backbone": str(backbone_id), "backbone_channels": backbone.channels},
    )


def _read_whole(path: Path) -> dict[str, Any]:
    from visiontl.weights import read_state_dict

    return read_state_dict(path)


def _head_report(model: nn.Module, classifier_report: WeightsReport, body: nn.Module, prefix: str) -> WeightsReport:
    """The segmentation model's weights report from its classifier's: backbone tensors loaded
    from the source count as loaded; the head (and whatever the source lacked) is missing."""
    from visiontl.contracts import WeightsReport

    if classifier_report.source == "random":
        return WeightsReport(source="random")
    not_loaded = set(classifier_report.missing) | set(classifier_report.reinitialised)
    loaded = [k for k in body.state_dict() if k.removeprefix(prefix) not in not_loaded and not k.endswith("num_batches_tracked")]
    own = model.state_dict()
    loaded_keys = {f"backbone.{k}" for k in loaded}
    missing = [k for k in own if k not in loaded_keys and not k.endswith("num_batches_tracked")]
    return WeightsReport(
        source=f"backbone {classifier_report.source}",
        loaded=len(loaded),
        missing=missing,
        unexpected=list(classifier_report.unexpected),
        reinitialised=[],
    )
