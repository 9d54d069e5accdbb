"""Layer groups of torchvision classifiers: ``stem``, ``stage1..N``, extras, ``head``.

A stage is the run of blocks that work at one resolution (a new stage starts at each block
that downsamples), so the same rule cuts SqueezeNet at its max-pools, MobileNet and
EfficientNet at their strided blocks, ConvNeXt and Swin at their downsampling layers.
Families whose torchvision code already names its stages (ResNet ``layer1..4``, RegNet
``block1..4``, DenseNet ``denseblock1..4``) keep them. Two optional groups sit between the
stages and the head: ``final_conv`` (the 1x1 convolution before pooling in MobileNet,
EfficientNet, MNASNet, ShuffleNet) and ``fc`` (the hidden fully connected layers of
AlexNet and VGG, pretrained and large, so not trained in feature extraction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from visiontl.contracts import GroupRole, LayerGroup
from visiontl.freeze.groups import groups_by_prefix
from visiontl_torchvision.arch import architecture

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

Spec = list[tuple[str, GroupRole, Sequence[str]]]
Units = list[tuple[str, Any]]


# --------------------------------------------------------------------------- helpers


def _children(model: nn.Module, path: str) -> Units:
    """``(qualified name, module)`` of the children of the submodule at ``path``."""
    parent = model.get_submodule(path) if path else model
    prefix = f"{path}." if path else ""
    return [(prefix + name, child) for name, child in parent.named_children()]


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _downsamples(module: nn.Module) -> bool:
    """Whether ``module`` lowers the resolution: a strided conv or pool, or patch merging."""
    from torch import nn

    for sub in module.modules():
        if type(sub).__name__.startswith("PatchMerging"):
            return True
        if isinstance(sub, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            stride = sub.stride if isinstance(sub.stride, tuple) else (sub.stride,)
            if any(s > 1 for s in stride):
                return True
    return False


def _by_resolution(units: Units) -> list[list[str]]:
    """Cut ``units`` into stages at every unit that downsamples; parameterless units
    (activations, pools) only mark boundaries."""
    stages: list[list[str]] = []
    current: list[str] = []
    for name, module in units:
        if current and _downsamples(module):
            stages.append(current)
            current = []
        if _has_params(module):
            current.append(name)
    if current:
        stages.append(current)
    return stages


def _stages(stages: Sequence[Sequence[str]]) -> Spec:
    return [(f"stage{i}", "stage", list(prefixes)) for i, prefixes in enumerate(stages, start=1)]


def _names(units: Units) -> list[str]:
    return [name for name, module in units if _has_params(module)]


def _head(model: nn.Module) -> str:
    from visiontl_torchvision.classification import head_path

    return head_path(model)


# --------------------------------------------------------------------------- families


def _resnet(m: Any) -> Spec:
    return [("stem", "stem", ["conv1", "bn1"]), *_stages([[f"layer{i}"] for i in range(1, 5)]), ("head", "head", ["fc"])]


def _regnet(m: Any) -> Spec:
    return [("stem", "stem", ["stem"]), *_stages([[n] for n in _names(_children(m, "trunk_output"))]), ("head", "head", ["fc"])]


def _shufflenet(m: Any) -> Spec:
    # torchvision numbers ShuffleNet's stages 2..4 (after the stem): they become stage1..3.
    return [
        ("stem", "stem", ["conv1"]),
        *_stages([["stage2"], ["stage3"], ["stage4"]]),
        ("final_conv", "stage", ["conv5"]),
        ("head", "head", ["fc"]),
    ]


def _squeezenet(m: Any) -> Spec:
    units = _children(m, "features")
    return [("stem", "stem", [units[0][0]]), *_stages(_by_resolution(units[1:])), ("head", "head", ["classifier"])]


def _stem_then_rest(units: Units) -> tuple[list[str], Units]:
    """The first conv and the BatchNorm right after it (VGG-BN), and what follows."""
    from torch import nn

    stem = [units[0][0]]
    rest = units[1:]
    if rest and isinstance(rest[0][1], nn.BatchNorm2d):
        stem.append(rest[0][0])
        rest = rest[1:]
    return stem, rest


def _vgg(m: Any) -> Spec:
    """AlexNet and VGG: conv blocks cut at the max-pools, then the hidden FC layers."""
    stem, rest = _stem_then_rest(_children(m, "features"))
    head = _head(m)
    fc = [n for n in _names(_children(m, "classifier")) if n != head]
    return [("stem", "stem", stem), *_stages(_by_resolution(rest)), ("fc", "stage", fc), ("head", "head", [head])]


def _mobile(m: Any) -> Spec:
    """MobileNetV2/V3, EfficientNet (v1, v2): stem conv, blocks, final 1x1 conv, classifier."""
    units = _children(m, "features")
    return [
        ("stem", "stem", [units[0][0]]),
        *_stages(_by_resolution(units[1:-1])),
        ("final_conv", "stage", [units[-1][0]]),
        ("head", "head", ["classifier"]),
    ]


def _mnasnet(m: Any) -> Spec:
    from torch import nn

    units = _children(m, "layers")
    blocks = [i for i, (_, module) in enumerate(units) if isinstance(module, nn.Sequential)]
    first, last = blocks[0], blocks[-1]
    return [
        ("stem", "stem", _names(units[:first])),
        *_stages(_by_resolution(units[first:last + 1])),
        ("final_conv", "stage", _names(units[last + 1:])),
        ("head", "head", ["classifier"]),
    ]


def _densenet(m: Any) -> Spec:
    units = _children(m, "features")
    stem: list[str] = []
    stages: list[list[str]] = []
    for name, module in units:
        if name.rsplit(".", 1)[-1].startswith("denseblock"):
            stages.append([name])
        elif stages and _has_params(module):
            stages[-1].append(name)  # a transition, or the final norm5, closes its block
        elif _has_params(module):
            stem.append(name)
    return [("stem", "stem", stem), *_stages(stages), ("head", "head", ["classifier"])]


def _convnext(m: Any) -> Spec:
    units = _children(m, "features")
    # The classifier holds the final LayerNorm2d: it trains with the new head.
    return [("stem", "stem", [units[0][0]]), *_stages(_by_resolution(units[1:])), ("head", "head", ["classifier"])]


def _swin(m: Any) -> Spec:
    units = _children(m, "features")
    stages = _by_resolution(units[1:])
    stages[-1].append("norm")  # the final norm belongs to the last stage's output
    return [("stem", "stem", [units[0][0]]), *_stages(stages), ("head", "head", ["head"])]


def _vit(m: Any, parts: int = 4) -> Spec:
    """Patch embedding and tokens as stem, the encoder layers in ``parts`` equal stages."""
    layers = _names(_children(m, "encoder.layers"))
    parts = max(1, min(parts, len(layers)))
    size, extra = divmod(len(layers), parts)
    stages, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        stages.append(layers[start:end])
        start = end
    stages[-1].append("encoder.ln")
    return [
        ("stem", "stem", ["class_token", "conv_proj", "encoder.pos_embedding"]),
        *_stages(stages),
        ("head", "head", ["heads"]),
    ]


def _maxvit(m: Any) -> Spec:
    return [("stem", "stem", ["stem"]), *_stages([[n] for n in _names(_children(m, "blocks"))]), ("head", "head", ["classifier"])]


def _googlenet(m: Any) -> Spec:
    # Auxiliary heads (kept only with options.aux_logits) branch off the middle stage.
    return [
        ("stem", "stem", ["conv1", "conv2", "conv3"]),
        *_stages([
            ["inception3a", "inception3b"],
            ["inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "aux1", "aux2"],
            ["inception5a", "inception5b"],
        ]),
        ("head", "head", ["fc"]),
    ]


def _inception(m: Any) -> Spec:
    return [
        ("stem", "stem", ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]),
        *_stages([
            ["Mixed_5b", "Mixed_5c", "Mixed_5d"],
            ["Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "AuxLogits"],
            ["Mixed_7a", "Mixed_7b", "Mixed_7c"],
        ]),
        ("head", "head", ["fc"]),
    ]


def _fallback(m: Any) -> Spec:
    """Unknown architecture: first parameterised unit as stem, each further one a stage,
    and the top-level module holding the classifier layer as head."""
    head = _head(m).split(".", 1)[0]
    features = getattr(m, "features", None)
    from torch import nn

    units = _children(m, "features") if isinstance(features, nn.Sequential) else _children(m, "")
    body = [name for name in _names(units) if name != head]
    return [("stem", "stem", body[:1]), *_stages([[n] for n in body[1:]]), ("head", "head", [head])]


_FAMILIES: dict[str, Callable[[Any], Spec]] = {
    "AlexNet": _vgg,
    "ConvNeXt": _convnext,
    "DenseNet": _densenet,
    "EfficientNet": _mobile,
    "GoogLeNet": _googlenet,
    "Inception3": _inception,
    "MaxVit": _maxvit,
    "MNASNet": _mnasnet,
    "MobileNetV2": _mobile,
    "MobileNetV3": _mobile,
    "RegNet": _regnet,
    "ResNet": _resnet,
    "ShuffleNetV2": _shufflenet,
    "SqueezeNet": _squeezenet,
    "SwinTransformer": _swin,
    "VGG": _vgg,
    "VisionTransformer": _vit,
}


def classification_groups(model: nn.Module) -> list[LayerGroup]:
    """Ordered layer groups of a torchvision classifier, input side first, ``head`` last.

    Raises:
        FreezeError: a parameter falls in no group (an architecture this module misreads).

    Example:
        >>> [g.name for g in classification_groups(torchvision.models.resnet18())]  # doctest: +SKIP
        ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'head']
    """
    arch = architecture(model, _FAMILIES)
    spec = _FAMILIES[arch](model) if arch is not None else _fallback(model)
    return groups_by_prefix(model, spec)
