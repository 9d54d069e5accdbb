"""Each architecture seen as ``head(features(x))``, for feature caching in head-only phases.

Every split below repeats the operations of the architecture's own ``forward``, in the same
order, so ``head(features(x))`` equals ``model(x)`` exactly (the core checks it again on the
first batch of a phase). Dropout sits in ``head``: features must be deterministic in train
mode. Submodules are looked up at call time, so a head replaced later is still the one used.
An architecture without an exact split here gets ``None``, which only turns caching off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from visiontl.contracts import FeatureSplit
from visiontl_torchvision.arch import architecture

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

_GOOGLENET_BODY = (
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
    "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
    "inception5a", "inception5b", "avgpool",
)
_INCEPTION_BODY = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
    "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool",
)
_RESNET_BODY = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")
_SHUFFLENET_BODY = ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5")


def _run(model: nn.Module, names: Sequence[str], x: torch.Tensor) -> torch.Tensor:
    for name in names:
        x = getattr(model, name)(x)
    return x


def _flat(x: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.flatten(x, 1)


def _resnet(m: Any) -> FeatureSplit:
    return FeatureSplit(lambda x: _flat(_run(m, _RESNET_BODY, x)), lambda f: m.fc(f))


def _regnet(m: Any) -> FeatureSplit:
    return FeatureSplit(lambda x: m.avgpool(m.trunk_output(m.stem(x))).flatten(start_dim=1), lambda f: m.fc(f))


def _shufflenet(m: Any) -> FeatureSplit:
    return FeatureSplit(lambda x: _run(m, _SHUFFLENET_BODY, x).mean([2, 3]), lambda f: m.fc(f))


def _squeezenet(m: Any) -> FeatureSplit:
    # The classifier (dropout, 1x1 conv, ReLU, pooling) works on the feature map.
    return FeatureSplit(lambda x: m.features(x), lambda f: _flat(m.classifier(f)))


def _pool_flatten(m: Any) -> FeatureSplit:
    """AlexNet, VGG, MobileNetV3, EfficientNet: features -> avgpool -> flatten -> classifier."""
    return FeatureSplit(lambda x: _flat(m.avgpool(m.features(x))), lambda f: m.classifier(f))


def _mobilenet_v2(m: Any) -> FeatureSplit:
    from torch.nn import functional

    return FeatureSplit(lambda x: _flat(functional.adaptive_avg_pool2d(m.features(x), (1, 1))), lambda f: m.classifier(f))


def _mnasnet(m: Any) -> FeatureSplit:
    return FeatureSplit(lambda x: m.layers(x).mean([2, 3]), lambda f: m.classifier(f))


def _densenet(m: Any) -> FeatureSplit:
    from torch.nn import functional

    def features(x: torch.Tensor) -> torch.Tensor:
        out = functional.relu(m.features(x), inplace=True)
        return _flat(functional.adaptive_avg_pool2d(out, (1, 1)))

    return FeatureSplit(features, lambda f: m.classifier(f))


def _convnext(m: Any) -> FeatureSplit:
    # The classifier starts with the final LayerNorm2d and the flatten.
    return FeatureSplit(lambda x: m.avgpool(m.features(x)), lambda f: m.classifier(f))


def _swin(m: Any) -> FeatureSplit:
    return FeatureSplit(lambda x: m.flatten(m.avgpool(m.permute(m.norm(m.features(x))))), lambda f: m.head(f))


def _vit(m: Any) -> FeatureSplit:
    import torch

    def features(x: torch.Tensor) -> torch.Tensor:
        x = m._process_input(x)  # patchify + project: the model's own (private) step
        x = torch.cat([m.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return m.encoder(x)[:, 0]

    return FeatureSplit(features, lambda f: m.heads(f))


def _maxvit(m: Any) -> FeatureSplit:
    def features(x: torch.Tensor) -> torch.Tensor:
        x = m.stem(x)
        for block in m.blocks:
            x = block(x)
        return x

    return FeatureSplit(features, lambda f: m.classifier(f))


def _googlenet(m: Any) -> FeatureSplit | None:
    if m.aux_logits:  # training mode returns a tuple: no single head to split off
        return None
    return FeatureSplit(lambda x: _flat(_run(m, _GOOGLENET_BODY, m._transform_input(x))), lambda f: m.fc(m.dropout(f)))


def _inception(m: Any) -> FeatureSplit | None:
    if m.aux_logits:
        return None
    return FeatureSplit(lambda x: _run(m, _INCEPTION_BODY, m._transform_input(x)), lambda f: m.fc(_flat(m.dropout(f))))


_SPLITS: dict[str, Callable[[Any], FeatureSplit | None]] = {
    "AlexNet": _pool_flatten,
    "ConvNeXt": _convnext,
    "DenseNet": _densenet,
    "EfficientNet": _pool_flatten,
    "GoogLeNet": _googlenet,
    "Inception3": _inception,
    "MaxVit": _maxvit,
    "MNASNet": _mnasnet,
    "MobileNetV2": _mobilenet_v2,
    "MobileNetV3": _pool_flatten,
    "RegNet": _regnet,
    "ResNet": _resnet,
    "ShuffleNetV2": _shufflenet,
    "SqueezeNet": _squeezenet,
    "SwinTransformer": _swin,
    "VGG": _pool_flatten,
    "VisionTransformer": _vit,
}


def feature_split(model: torch.nn.Module) -> FeatureSplit | None:
    """The exact features/head split of a torchvision classifier, or ``None`` if unknown."""
    arch = architecture(model, _SPLITS)
    if arch is None:
        return None
    return _SPLITS[arch](model)
