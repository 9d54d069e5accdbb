"""Building torchvision classifiers with a new head for the user's classes.

They serve classification and every task whose output contract is an image-level vector
(``IMAGE_VECTOR``: a regression, multi-label tagging ...): the head has ``num_classes`` (K)
outputs whatever the task, and the build, weights, layer groups and feature split are the same.

The architecture is created with ``weights=None`` (or with torchvision's weights, ImageNet
shaped, when ``pretrained`` is asked for); then the classifier layer is replaced by a new one
for ``num_classes``; a local weights file is loaded last, so a file that already has a head
of the right size (a visiontl checkpoint) keeps it, and an ImageNet head is reported as
re-initialised.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError, PluginError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl.cards import ModelCard
    from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup

#: The classifier layer each architecture ends with (a ``named_modules`` path), replaced by
#: the new head. Anything else falls back to :func:`_find_head` (the rule these all obey).
HEAD_PATHS: dict[str, str] = {
    "AlexNet": "classifier.6",
    "ConvNeXt": "classifier.2",
    "DenseNet": "classifier",
    "EfficientNet": "classifier.1",
    "GoogLeNet": "fc",
    "Inception3": "fc",
    "MaxVit": "classifier.5",
    "MNASNet": "classifier.1",
    "MobileNetV2": "classifier.1",
    "MobileNetV3": "classifier.3",
    "RegNet": "fc",
    "ResNet": "fc",
    "ShuffleNetV2": "fc",
    "SqueezeNet": "classifier.1",
    "SwinTransformer": "head",
    "VGG": "classifier.6",
    "VisionTransformer": "heads.head",
}

#: Options that are not the builder's to take (``options.weights`` is read, then removed, earlier).
_RESERVED = {
    "num_classes": "the number of classes comes from the dataset",
    "progress": "download progress is managed by visiontl",
}

#: Keyword options a builder consumes itself before the model class, whose ``**kwargs``
#: would otherwise swallow any misspelt option without a word.
_BUILDER_OPTIONS: dict[str, tuple[str, ...]] = {"MobileNetV3": ("width_mult", "reduced_tail", "dilated")}

#: Architectures with auxiliary classifiers that return tuples in training mode.
_AUX = {"GoogLeNet": ("aux1", "aux2"), "Inception3": ("AuxLogits",)}


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    import torchvision

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def model_names(task: str = "classification") -> list[str]:
    """Every torchvision classification builder name (``resnet18``, ``vit_b_16`` ...)."""
    return list(_names())


def cards(task: str = "classification") -> list[ModelCard]:
    """Catalogue cards of the curated classifiers (figures from torchvision's weight metadata)."""
    from visiontl_torchvision.catalogue import classification_cards

    return list(classification_cards())


def groups(built: BuiltModel) -> list[LayerGroup]:
    """Layer groups of a classifier built here."""
    from visiontl_torchvision.groups import classification_groups

    return classification_groups(built.model)


def build(request: BuildRequest) -> BuiltModel:
    """Build ``request.model_id`` with a new ``num_classes`` head (classification, or any
    task of image-level outputs).

    Weights: a local file (``request.weights``) wins; else torchvision's published weights
    when ``request.pretrained`` (``options.weights`` picks the enum value); else random.

    Raises:
        UnknownModelError: the name is no torchvision classification builder (did-you-mean).
        ConfigError: an option the builder rejects, or an unknown ``options.weights``.
        WeightsError: the weights cannot be had (offline, unreadable, not fitting).
    """
    from visiontl.contracts import BuiltModel, WeightsReport
    from visiontl.ids import unknown_model
    from visiontl.weights import load_matching, read_state_dict
    from visiontl_torchvision import weights as tv_weights
    from visiontl_torchvision.splits import feature_split

    model_id = request.model_id
    if model_id.name not in _names():
        raise unknown_model(model_id, _names())
    options = dict(request.options)
    choice = options.pop("weights", None)
    for key, why in _RESERVED.items():
        if key in options:
            raise ConfigError(f"model.options.{key} cannot be set for '{model_id}': {why}.", fix=f"remove model.options.{key}")
    _check_options(request, options)
    # An explicit enum value is honoured even without loading it: its transforms still say
    # how the model expects its input (e.g. for a local file fine-tuned from those weights).
    enum = tv_weights.weights_enum(model_id, choice) if choice is not None else None
    use_hub = request.pretrained and request.weights is None
    if use_hub and enum is None:
        enum = tv_weights.weights_enum(model_id)

    if use_hub:
        model = tv_weights.load_pretrained(model_id, enum, lambda w: _call_builder(request, options, w))
        loaded = len(model.state_dict())
    else:
        model = _call_builder(request, options, None)
    _drop_aux(model, options)
    head_keys = replace_head(model, request.num_classes)

    if request.weights is not None:
        report = load_matching(model, read_state_dict(request.weights), f"file:{request.weights}")
    elif use_hub:
        report = WeightsReport(
            source=f"pretrained:torchvision:{enum}",
            loaded=loaded - len(head_keys),
            reinitialised=head_keys,
        )
    else:
        report = WeightsReport(source="random")
    return BuiltModel(
        model=model,
        model_id=model_id,
        task=request.task,
        preprocessing=tv_weights.preprocessing(enum),
        weights=report,
        split=feature_split(model),
        extras={"weights_enum": str(enum)} if enum is not None else {},
    )


def _call_builder(request: BuildRequest, options: dict[str, Any], weights: Any) -> nn.Module:
    """``torchvision.models.get_model`` with the recipe's options; bad options as ConfigError."""
    import torchvision

    kwargs = dict(options)
    if weights is None and request.model_id.name in ("googlenet", "inception_v3"):
        # Keep torchvision's own initialisation and silence its FutureWarning about the
        # default changing. (With weights the builder sets init_weights=False itself.)
        kwargs.setdefault("init_weights", True)
    if weights is not None and kwargs.get("aux_logits") is False:
        # The builder needs the auxiliary heads to load the published weights (and refuses
        # aux_logits=False); _drop_aux removes them right after.
        del kwargs["aux_logits"]
    try:
        return torchvision.models.get_model(request.model_id.name, weights=weights, progress=False, **kwargs)
    except (TypeError, ValueError) as exc:
        if not options:
            raise
        raise _bad_option(request, options, exc) from None


def _model_class(name: str) -> type | None:
    """The class a builder returns, from its return annotation (no model is built)."""
    import inspect

    import torchvision

    cls = inspect.signature(torchvision.models.get_model_builder(name)).return_annotation
    return cls if isinstance(cls, type) else None


def _known_options(cls: type) -> tuple[list[str], bool]:
    """The keyword options of ``cls`` (plus those its builder takes), and whether its
    ``__init__`` also takes ``**kwargs``."""
    import inspect

    params = inspect.signature(cls).parameters
    swallows = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    # Parameters without a default (block, layers ...) are the builder's own to pass.
    named = [
        n for n, p in params.items()
        if n not in _RESERVED
        and p.default is not inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    ]
    return sorted({*named, *_BUILDER_OPTIONS.get(cls.__name__, ())}), swallows


def _check_options(request: BuildRequest, options: dict[str, Any]) -> None:
    """Reject options that the model class would silently ignore (it takes ``**kwargs``)."""
    cls = _model_class(request.model_id.name) if options else None
    if cls is None:
        return
    known, swallows = _known_options(cls)
    unknown = sorted(set(options) - set(known))
    if swallows and unknown:
        raise ConfigError(
            f"model.options.{unknown[0]} is not an option of torchvision's '{request.model_id.name}' "
            f"builder (it would be silently ignored). Valid: {', '.join(known)}.",
            fix=f"remove or correct model.options.{unknown[0]}",
        )


def _bad_option(request: BuildRequest, options: dict[str, Any], exc: Exception) -> ConfigError:
    text = str(exc)
    match = re.search(r"keyword argument '(\w+)'", text) or re.search(r"parameter '(\w+)'", text)
    named = match.group(1) if match and match.group(1) in options else None
    what = f"model.options.{named}" if named else f"model.options ({', '.join(sorted(options))})"
    cls = _model_class(request.model_id.name)
    valid = f" Valid: {', '.join(_known_options(cls)[0])}." if cls is not None else ""
    return ConfigError(
        f"{what} rejected by torchvision's '{request.model_id.name}' builder: {type(exc).__name__}: {text}.{valid}",
        fix="use keyword arguments of the torchvision builder (e.g. dropout); "
        "see https://pytorch.org/vision/stable/models.html",
    )


def _drop_aux(model: Any, options: dict[str, Any]) -> None:
    """Remove GoogLeNet/Inception auxiliary heads unless ``options.aux_logits`` asks for them.

    In training mode they make the model return a tuple, which a classification loss cannot
    take, and their ImageNet-sized classifiers would not fit the user's classes.
    """
    from visiontl_torchvision.arch import architecture

    arch = architecture(model, _AUX)
    if arch is None or options.get("aux_logits"):
        return
    model.aux_logits = False
    for name in _AUX[arch]:
        setattr(model, name, None)


def head_path(model: nn.Module) -> str:
    """The ``named_modules`` path of the model's classifier layer."""
    from visiontl_torchvision.arch import architecture

    arch = architecture(model, HEAD_PATHS)
    return HEAD_PATHS[arch] if arch is not None else _find_head(model)


def _find_head(model: nn.Module) -> str:
    """The generic rule: the last Linear (or 1x1-style Conv2d) producing ImageNet's 1000 classes.

    torchvision builds every classifier for 1000 classes by default, and registers the final
    layer after any auxiliary heads, so the last such module is the classifier.
    """
    from torch import nn

    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == 1000:
            found = name
        elif isinstance(module, nn.Conv2d) and module.out_channels == 1000:
            found = name
    if not found:
        raise PluginError(
            f"Cannot find the classifier layer of {type(model).__name__} (no Linear or Conv2d with 1000 outputs).",
            fix="add the architecture to visiontl_torchvision.classification.HEAD_PATHS",
        )
    return found


def new_head(old: nn.Module, num_classes: int) -> nn.Module:
    """A fresh layer like ``old`` with ``num_classes`` outputs, on ``old``'s device and dtype.

    Linear heads keep PyTorch's default initialisation. A Conv2d head (SqueezeNet's, followed
    by ReLU and global pooling) gets torchvision's own N(0, 0.01) weights and zero bias:
    the default init would start it with large, mostly dead outputs.
    """
    from torch import nn

    if isinstance(old, nn.Linear):
        layer: nn.Linear | nn.Conv2d = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    elif isinstance(old, nn.Conv2d):
        geometry: dict[str, Any] = {"kernel_size": old.kernel_size, "stride": old.stride, "padding": old.padding}
        layer = nn.Conv2d(old.in_channels, num_classes, bias=old.bias is not None, **geometry)
        nn.init.normal_(layer.weight, mean=0.0, std=0.01)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    else:
        raise PluginError(f"The classifier layer is a {type(old).__name__}; a new head can replace Linear or Conv2d only.")
    return layer.to(device=old.weight.device, dtype=old.weight.dtype)


def replace_head(model: nn.Module, num_classes: int) -> list[str]:
    """Swap the model's classifier layer for a new ``num_classes`` one.

    Returns:
        The ``state_dict`` keys of the new head (``fc.weight``, ``fc.bias`` ...).
    """
    path = head_path(model)
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    layer = new_head(model.get_submodule(path), num_classes)
    # setattr on a Sequential with a digit name replaces that position in place.
    setattr(parent, attr, layer)
    if hasattr(model, "num_classes"):  # ViT, Swin and SqueezeNet record it: keep it true
        model.num_classes = num_classes  # type: ignore[assignment]
    return [f"{path}.{key}" for key in layer.state_dict()]
