"""The data that crosses the hook boundary between the core and plugins.

Everything here is a plain dataclass so that plugins, the core and tests agree on one shape.
No module here imports torch at import time: ``visiontl plugins`` and ``visiontl --help``
load this file without paying for torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from visiontl.ids import ModelId

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from torch import nn

    from visiontl.config.schema import Recipe
    from visiontl.freeze.plan import Plan
    from visiontl.runs.layout import RunDir
    from visiontl.tasks.base import DataInfo, TaskAdapter

GroupRole = Literal["stem", "stage", "neck", "head"]

# --------------------------------------------------------------------------- output contracts
# What a task needs from a model's output, so that a family builds for every task whose output
# it can provide instead of for a list of task names. A task declares one
# (``TaskAdapter.output``); a family declares the ones it provides for any task
# (``PluginInfo.outputs``) and receives the task's in ``BuildRequest.output``.

#: One vector of K values per image: eval outputs ``(batch, K)`` (classifiers: logits;
#: a regression: K predicted values).
IMAGE_VECTOR = "image_vector"
#: A K-channel map per image: eval outputs ``(batch, K, H, W)`` (segmenters: per-pixel logits).
DENSE_MAP = "dense_map"
#: A detector under the detection contract of :mod:`visiontl.tasks.detection` (train mode: a
#: dict of losses; eval mode: per-image boxes, scores, labels, and masks for instance
#: segmentation). Families build detectors for the detection tasks only: their targets are
#: part of the contract.
DETECTOR = "detector"

#: The built-in output contracts, with the one line ``visiontl plugins`` and the docs show.
OUTPUT_KINDS: dict[str, str] = {
    IMAGE_VECTOR: "an image-level vector of K outputs, (batch, K)",
    DENSE_MAP: "a dense K-channel map, (batch, K, H, W)",
    DETECTOR: "a detector (boxes, scores, labels [, masks] per image)",
}


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin says about itself in ``visiontl plugins``.

    Attributes:
        name: the plugin's name (its entry-point name for installed plugins).
        families: model-id families it builds (``timm`` for ``timm:resnet18``).
        tasks: task names it serves (or adds, through ``visiontl_tasks``).
        requires: distributions it needs at run time (checked without importing them).
        install_hint: the command that installs what it needs.
        description: one line for listings.
        version: the plugin's version (defaults to its distribution's version).
        outputs: output contracts (:data:`IMAGE_VECTOR`, :data:`DENSE_MAP` ...) its models
            provide for *any* task that asks for them, besides the tasks it names: a new task
            whose ``TaskAdapter.output`` is one of them can use the family's models, and
            ``visiontl select``/``models`` offer them for it.
    """

    name: str
    families: tuple[str, ...]
    tasks: tuple[str, ...]
    requires: tuple[str, ...] = ()
    install_hint: str = ""
    description: str = ""
    version: str | None = None
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preprocessing:
    """How a model expects its input: resolved from the model, used by the data pipeline.

    Every field has a default, the convention of torchvision's ImageNet classifiers (224 px,
    ImageNet mean and std, bilinear resize, centre crop 0.875): a family whose weights were
    trained that way can return ``Preprocessing()``, and one that differs sets only what
    differs (``Preprocessing(input_size=(64, 64), crop_pct=1.0)``). The recipe's
    ``data.image_size`` replaces ``input_size`` at training time (:meth:`with_size`).

    Attributes:
        input_size: (height, width) the model was trained at.
        mean, std: per-channel normalisation of RGB in [0, 1].
        interpolation: ``bilinear`` or ``bicubic`` (resize interpolation).
        crop_pct: eval-time centre-crop fraction (resize to size / crop_pct, then crop).
    """

    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    crop_pct: float = 0.875

    def with_size(self, size: int | tuple[int, int] | None) -> Preprocessing:
        """A copy with another input size (``None`` keeps this one)."""
        if size is None:
            return self
        hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        return Preprocessing(hw, self.mean, self.std, self.interpolation, self.crop_pct)


@dataclass(frozen=True)
class BuildRequest:
    """What the core asks a plugin to build.

    Attributes:
        model_id: parsed ``family:name``.
        task: task name (``classification`` ...).
        num_classes: size of the new head (K: classes, or a regression's outputs).
        pretrained: load the family's published pretrained weights (hub / URL / cache).
        weights: a local weights file (state_dict or checkpoint); wins over ``pretrained``.
        options: family-specific keyword options from the recipe's ``model.options``.
        class_names: the dataset's class names, in label order.
        input_size: the recipe's ``data.image_size`` as (height, width), or ``None`` for the
            model's own; families whose architecture depends on it (letterbox size, anchors)
            read it here.
        data_root: the root relative paths in ``options`` (backbone weight files ...) are
            resolved against (``visiontl.weights.resolve_weights_path``).
        trust_weights: the user vouched for ``weights`` (``model.trust_weights`` or
            ``--trust-weights``): a plugin may then read a file format that can run code when
            loaded (a full pickle). Without it, only data-only readers are allowed.
        output: the output contract the task needs (:data:`IMAGE_VECTOR`, :data:`DENSE_MAP`,
            :data:`DETECTOR` or a plugin's own), filled by the core from ``TaskAdapter.output``.
            Empty when a caller did not say: a family then asks
            :func:`visiontl.tasks.registry.output_of` (which looks the task up).
    """

    model_id: ModelId
    task: str
    num_classes: int
    pretrained: bool = False
    weights: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    input_size: tuple[int, int] | None = None
    data_root: Path | None = None
    trust_weights: bool = False
    output: str = ""


@dataclass
class WeightsReport:
    """Where a model's initial weights came from, recorded in every run summary.

    Attributes:
        source: ``random``, ``pretrained:<where>`` or ``file:<path>``.
        loaded: number of tensors loaded from the source.
        missing: model keys the source did not provide (left at their initialisation); keys
            listed in ``reinitialised`` are not repeated here.
        unexpected: source keys the model has no place for (ignored).
        reinitialised: keys present in both whose shapes differ (typically the old head),
            left at their fresh initialisation: the new head.
    """

    source: str = "random"
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "loaded": self.loaded,
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "reinitialised": list(self.reinitialised),
        }


@dataclass(frozen=True)
class FeatureSplit:
    """A model seen as ``head(features(x))``, which makes feature caching possible.

    The core caches ``features(x)`` only after checking, on the first batch of a phase, that
    no trainable parameter takes part in ``features`` (its output needs no gradient), that
    ``features`` is deterministic, and that ``head(features(x))`` equals ``model(x)``.

    Attributes:
        features: input batch -> features (a tensor).
        head: features -> model output.
    """

    features: Callable[[torch.Tensor], torch.Tensor]
    head: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class BuiltModel:
    """A plugin's answer to ``visiontl_build``.

    Attributes:
        model: the ``torch.nn.Module``, with a new head for ``num_classes``.
        model_id: the id it was built from.
        task: the task it serves.
        output: the output contract it was built to provide (the request's; the core fills it
            when a plugin leaves it empty). Families dispatch their other hooks on it.
        preprocessing: the input convention of its weights.
        weights: where its weights came from.
        split: optional features/head split for feature caching.
        extras: anything else the family's own hooks need later (kept out of the core's way).
    """

    model: nn.Module
    model_id: ModelId
    task: str
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    weights: WeightsReport = field(default_factory=WeightsReport)
    split: FeatureSplit | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    output: str = ""


@dataclass(frozen=True)
class LayerGroup:
    """A named, ordered slice of a model's parameters: the unit the freezing engine acts on.

    Attributes:
        name: ``stem``, ``stage1`` ... ``stageN``, ``neck``, ``head`` (or a family's own names,
            such as ``rpn`` or ``box_head``).
        role: ``stem``, ``stage``, ``neck`` or ``head``: feature extraction trains the
            groups whose role is ``head``; progressive phases unfreeze from the end.
        params: qualified parameter names (``model.named_parameters()``) in this group.
    """

    name: str
    role: GroupRole
    params: tuple[str, ...]


@dataclass
class TrainJob:
    """Everything ``visiontl_train`` needs for one run.

    Attributes:
        recipe: the validated recipe.
        built: the model and its metadata.
        groups: the ordered layer groups of the model.
        plan: the phases the freezing engine will apply.
        task: the task adapter (datasets, loss, metrics).
        data_info: what inspecting the dataset found (classes, counts, skipped files).
        run: the run directory to write to.
        data_root: root that relative dataset and weight paths are resolved against.
        resume_from: a checkpoint to continue from, or ``None``.
        fire: call ``fire("visiontl_on_epoch_end", **kwargs)`` to emit an event hook.
    """

    recipe: Recipe
    built: BuiltModel
    groups: list[LayerGroup]
    plan: Plan
    task: TaskAdapter
    data_info: DataInfo
    run: RunDir
    data_root: Path
    resume_from: Path | None = None
    fire: Callable[..., Any] = field(default=lambda name, **kwargs: None)


@dataclass
class TrainResult:
    """What a trainer hands back: the core writes the summary and report from it.

    Attributes:
        best_metric: value of the primary metric at its best epoch.
        best_epoch: 1-based global epoch of the best value.
        final_metrics: metrics after the last epoch.
        history: one dict of metrics per epoch (also in ``metrics.csv``).
        primary_metric: name of the metric that decides "best".
        timings: seconds spent per phase and in total.
        skipped: files skipped while training (path -> reason).
        extras: anything family-specific worth recording in the summary.
    """

    best_metric: float
    best_epoch: int
    final_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    primary_metric: str
    timings: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkRequest:
    """How to measure a model.

    Attributes:
        input_size: (height, width) of the synthetic input.
        batch_size: images per forward pass.
        device: ``cpu`` or ``cuda``.
        threads: CPU threads (``torch.set_num_threads``), ``None`` leaves the default.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        warmup: untimed iterations first.
        min_repeats: timed iterations at least.
        min_seconds: keep timing until this much time has passed.
    """

    input_size: tuple[int, int] = (224, 224)
    batch_size: int = 1
    device: str = "cpu"
    threads: int | None = None
    precision: str = "fp32"
    warmup: int = 5
    min_repeats: int = 20
    min_seconds: float = 1.0


@dataclass
class BenchmarkResult:
    """Measured figures for one model under one :class:`BenchmarkRequest`.

    Attributes follow the names used in tables and JSON output; every result records the
    conditions (threads, batch, precision, device, versions) it was measured under.
    """

    model_id: str
    latency_ms_p50: float
    latency_ms_p90: float
    throughput_ips: float
    params: int
    batch_size: int
    input_size: tuple[int, int]
    precision: str
    device: str
    threads: int
    repeats: int
    macs: int | None = None
    peak_memory_mb: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    REQUIRED_FIELDS = (
        "model_id",
        "latency_ms_p50",
        "latency_ms_p90",
        "throughput_ips",
        "params",
        "batch_size",
        "input_size",
        "precision",
        "device",
        "threads",
        "repeats",
    )
