"""The tinycnn family: small plain CNNs for 32-128 px images, built here (no downloads).

Each model is ``stem -> stage1..N -> global average pool -> head``; every stage halves the
resolution with a strided 3x3 convolution and adds a second 3x3 convolution, each followed by
BatchNorm and ReLU. Small enough to train from scratch on a CPU in seconds, and shaped like
the big backbones, so every part of the freezing engine applies: named groups ``stem``,
``stage1`` ... ``stageN``, ``head``, BatchNorm in every body group, a features/head split for
feature caching.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from visiontl.contracts import BuiltModel, FeatureSplit, LayerGroup, Preprocessing, WeightsReport
from visiontl.errors import ConfigError, WeightsError
from visiontl.ids import unknown_model

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.contracts import BuildRequest

#: name -> (stem width, stage widths). Parameters and MACs are in catalogue.json.
VARIANTS: dict[str, tuple[int, tuple[int, ...]]] = {
    "nano": (8, (16, 32)),
    "micro": (16, (24, 48, 96)),
    "small": (24, (32, 64, 128, 256)),
}
#: The input size the cards' figures refer to (and the default preprocessing).
INPUT_SIZE = (64, 64)
#: Build options a recipe may give in ``model.options``.
OPTIONS = {"dropout": "dropout probability before the head (default 0.0)"}


def _conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class TinyCNN(nn.Module):
    """``head(features(x))``: ``features`` ends with global average pooling.

    Args:
        stem: width of the stem convolution.
        stages: width of each stage (each halves the resolution).
        num_classes: outputs of the head.
        dropout: dropout before the head.
    """

    def __init__(self, stem: int, stages: tuple[int, ...], num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv(3, stem, 2))
        widths = (stem, *stages)
        self.stages = nn.Sequential(
            *(nn.Sequential(*_conv(cin, cout, 2), *_conv(cout, cout, 1)) for cin, cout in zip(widths[:-1], widths[1:], strict=True))
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def create(name: str, num_classes: int, dropout: float = 0.0) -> TinyCNN:
    """A tinycnn model by name (random weights)."""
    stem, stages = VARIANTS[name]
    return TinyCNN(stem, stages, num_classes, dropout)


def _options(request: BuildRequest) -> dict[str, Any]:
    unknown = sorted(set(request.options) - set(OPTIONS))
    if unknown:
        accepted = "; ".join(f"{k}: {v}" for k, v in OPTIONS.items())
        raise ConfigError(f"model.options {unknown} are not tinycnn options.", fix=f"use: {accepted}")
    dropout = request.options.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.options.dropout must be a number in [0, 1), not {dropout!r}.")
    return {"dropout": float(dropout)}


def build(request: BuildRequest) -> BuiltModel:
    """Answer ``visiontl_build`` for a ``tinycnn:<name>`` request.

    Raises:
        UnknownModelError: the name is not a tinycnn variant (with did-you-mean).
        ConfigError: unknown ``model.options``, or a task whose output is not an image vector.
        WeightsError: ``pretrained: true`` (there are no published weights to download).
    """
    from visiontl_example import serves

    name = request.model_id.name
    if name not in VARIANTS:
        raise unknown_model(request.model_id, VARIANTS)
    if not serves(request.task, request.output):
        raise ConfigError(
            f"tinycnn models give an image-level vector (classification, multilabel and any task of that output), "
            f"not the output task '{request.task}' needs.",
            fix=f"pick a model of a family that serves {request.task} (see: visiontl models --task {request.task})",
        )
    model = create(name, request.num_classes, **_options(request))
    if request.weights is not None:
        # A local file: a state_dict or a visiontl checkpoint (best.pt of an earlier run).
        # Tensors whose shapes differ (another number of classes) keep their fresh values.
        from visiontl.weights import load_matching, read_state_dict

        report = load_matching(model, read_state_dict(request.weights), f"file:{request.weights}")
    elif request.pretrained:
        raise WeightsError(
            f"'{request.model_id}' has no published pretrained weights.",
            fix="set model.pretrained: false and train from scratch (strategy: full), or give "
            "model.weights: PATH (e.g. the best.pt of an earlier visiontl run) to transfer from",
        )
    else:
        report = WeightsReport(source="random")
    return BuiltModel(
        model=model,
        model_id=request.model_id,
        task=request.task,
        preprocessing=Preprocessing(input_size=INPUT_SIZE, crop_pct=1.0),
        weights=report,
        split=FeatureSplit(features=model.forward_features, head=model.forward_head),
    )


def groups(model: nn.Module) -> list[LayerGroup]:
    """``stem``, ``stage1`` ... ``stageN``, ``head``: every parameter once, input to output."""
    names = [n for n, _ in model.named_parameters()]

    def under(prefix: str) -> tuple[str, ...]:
        return tuple(n for n in names if n.startswith(prefix))

    out = [LayerGroup("stem", "stem", under("stem."))]
    for i in range(len(model.stages)):
        out.append(LayerGroup(f"stage{i + 1}", "stage", under(f"stages.{i}.")))
    out.append(LayerGroup("head", "head", under("head.")))
    return out
