"""The recipe schema: every option declared once, with its type, default and help.

The docs' option tables and ``visiontl config schema`` are generated from these classes.
Unknown keys are rejected (``extra="forbid"``); :mod:`visiontl.config.loader` turns pydantic's
errors into one message per problem with the field path and the nearest valid key.
"""

from __future__ import annotations

import math
import re
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from visiontl.search.section import SearchSection

#: A learning rate: one value for every group, ``[low, high]`` spread geometrically from the
#: first group to the head, or an explicit ``{group: lr}`` map (``default`` covers the rest).
LearningRate = float | tuple[float, float] | dict[str, float]
BnPolicy = Literal["freeze", "train", "eval"]
AugmentationPreset = Literal["none", "light", "standard", "strong", "auto"]
#: How an image reaches ``data.image_size`` (see ``DataSection.resize``).
ResizeMode = Literal["auto", "stretch", "letterbox"]


def image_hw(size: int | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """A recipe's ``data.image_size`` as (height, width); ``None`` stays ``None``.

    Example:
        >>> image_hw(224), image_hw([360, 480]), image_hw(None)
        ((224, 224), (360, 480), None)
    """
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))


def _numeric_only(annotation: Any) -> bool:
    """Whether a field takes only numbers (``int``, ``float``, optionally ``None``)."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(a in (int, float) for a in args)
    return False


def _number(value: Any) -> float | None:
    """``value`` as a float when it is a number or a numeric string (YAML reads ``1e-3`` as a
    string), else ``None``; booleans are not numbers here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def check_learning_rate(value: Any) -> Any:
    """Check a :data:`LearningRate` before its type is resolved, with one clear message.

    Every rate must be a finite number above 0 (a negative or zero rate would reach torch's
    optimizer and fail, or train nothing, only once the run has started).
    """
    if value is None:
        return value
    shape = "a positive number, [low, high], or {group: lr}"
    if isinstance(value, dict):
        rates = list(value.items())
    elif isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"learning rate must be {shape}; a list needs exactly 2 values [low, high], not {len(value)}")
        rates = [("low", value[0]), ("high", value[1])]
    else:
        rates = [("", value)]
    for key, rate in rates:
        where = f" ({key})" if key else ""
        number = _number(rate)
        if number is None:
            raise ValueError(f"learning rate{where} must be {shape}, not {rate!r}")
        if not math.isfinite(number) or number <= 0:
            raise ValueError(
                f"learning rate{where} must be a finite number above 0, not {rate!r} "
                "(to keep a group fixed, leave it frozen in the strategy instead)"
            )
    return value


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, assignments are validated.

    Numbers must be finite (no ``.nan``/``.inf``), and a numeric option does not take a
    boolean (YAML reads ``yes``/``on``/``true`` as one).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and _numeric_only(field.annotation):
            raise ValueError(f"must be a number, not {str(value).lower()}")
        return value


class DataSection(Section):
    """Where the images and labels are and how to split them."""

    format: str = Field(
        "imagefolder",
        description="Dataset layout: 'imagefolder' (one folder per class) or 'csv' (columns path,label) "
        "for classification; 'coco' (COCO JSON) or 'yolo' (YOLO txt + data yaml) for detection and "
        "instance segmentation; 'masks' (image and mask folders) for semantic segmentation.",
    )
    root: str = Field(
        ...,
        description="Dataset folder, absolute or relative to the data root "
        "($VISIONTL_DATA_DIR, default ./data).",
    )
    train: str = Field(
        "train",
        description="Training split under root: a class-folder parent (imagefolder), a CSV file (csv), a "
        "COCO JSON file (coco), or an image folder (masks).",
    )
    val: str | None = Field(
        "val",
        description="Validation split, in the same form as train; null to carve it out of train with "
        "val_split or val_last.",
    )
    val_split: float | None = Field(
        None, gt=0.0, lt=1.0, description="Fraction of train held out for validation (stratified by class for classification)."
    )
    val_last: int | None = Field(
        None, ge=1, description="Hold out the last N training items (sorted by file name) for validation."
    )
    images: str | None = Field(
        None,
        description="Image folder under root that COCO file_name entries are relative to (coco; default: "
        "the JSON's folder), or the image folder (masks; default: train).",
    )
    masks: str | None = Field(
        None, description="Mask folder under root, matched to images by file stem (masks)."
    )
    val_images: str | None = Field(
        None,
        description="Validation image folder, when separate: the folder the val JSON's file_name entries are "
        "relative to (coco), or the validation image folder (masks; same as val, give one of them).",
    )
    val_masks: str | None = Field(None, description="Validation mask folder (masks), when separate.")
    test: str | None = Field(
        None,
        description="Test split, scored once at the end of the run with the best checkpoint and reported apart "
        "(summary.json 'test', report.md); never used to pick the best epoch or to stop early. Same form as "
        "train: a class-folder parent (imagefolder), a CSV (csv), a COCO JSON (coco), an image folder with "
        "test_masks (masks), or the data yaml's entry name, e.g. 'test' (yolo).",
    )
    test_images: str | None = Field(
        None, description="Folder the test JSON's file_name entries are relative to (coco; default: images, else the JSON's folder)."
    )
    test_masks: str | None = Field(None, description="Test mask folder (masks), matched to the test images by file stem.")
    yaml: str | None = Field(
        None,
        description="YOLO data yaml under root (yolo); its train/val entries name the splits and a relative "
        "'path:' is resolved against the yaml's folder.",
    )
    image_root: str | None = Field(
        None, description="Folder CSV paths are relative to (default: the CSV's folder)."
    )
    class_names: list[str] | None = Field(
        None, description="Class order to use; default: sorted folder names, CSV labels, or the annotation file's categories."
    )
    value_map: dict[int, int] | None = Field(
        None,
        description="Semantic masks: stored mask value -> class index (e.g. panoptic ids to 0..C-1); values "
        "not listed are reported unless they equal ignore_index.",
    )
    mask_colors: list[tuple[int, int, int]] | None = Field(
        None, description="Semantic masks stored as RGB colours: the colour of each class, in class order."
    )
    ignore_index: int = Field(
        255, description="Semantic masks: label value ignored by the loss and the metrics."
    )
    synthesize: Literal["shapes"] | None = Field(
        None,
        description="Generate a small synthetic dataset at root when it is missing "
        "('shapes': circles, squares, triangles). Used by the quickstart; needs no download.",
    )
    image_size: int | tuple[int, int] | None = Field(
        None,
        description="Input size: one number (a square) or [height, width] (e.g. [360, 480] for 4:3 street "
        "scenes); default: the model's own input size. How images reach it: data.resize.",
    )
    resize: ResizeMode = Field(
        "auto",
        description="How images reach data.image_size: 'stretch' (exactly H x W, the aspect ratio changes), "
        "'letterbox' (scaled to fit inside H x W keeping the aspect ratio, padded at the bottom and right; "
        "segmentation pads masks with ignore_index), or 'auto': the task's own (classification: resize and "
        "centre-crop; segmentation: stretch; detection: fit inside H x W keeping the aspect ratio, unpadded).",
    )
    limit: int | None = Field(
        None, ge=1, description="Use at most this many images per class and split (classification) or per split (other tasks), for smoke runs."
    )
    split_seed: int = Field(0, description="Seed of the train/val split when val_split is used.")

    @field_validator("mask_colors")
    @classmethod
    def _colors(cls, value: list[tuple[int, int, int]] | None) -> list[tuple[int, int, int]] | None:
        for colour in value or []:
            if not all(0 <= c <= 255 for c in colour):
                raise ValueError(f"RGB values are 0 to 255, not {list(colour)}")
        return value

    @field_validator("image_size", mode="before")
    @classmethod
    def _size_text(cls, value: Any) -> Any:
        # "360x480" as benchmark --input-size writes it; a boolean is no size.
        if isinstance(value, bool):
            raise ValueError(f"must be a number or [height, width], not {str(value).lower()}")
        if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*[xX]\s*\d+\s*", value):
            h, w = re.split(r"[xX]", value)
            return (int(h), int(w))
        return value

    @field_validator("image_size")
    @classmethod
    def _size(cls, value: int | tuple[int, int] | None) -> int | tuple[int, int] | None:
        sides = [value] if isinstance(value, int) else list(value or [])
        if any(side < 16 for side in sides):
            raise ValueError(f"every side must be at least 16 pixels, not {value if isinstance(value, int) else list(value or [])}")
        return value

    @model_validator(mode="after")
    def _one_way_per_split(self) -> DataSection:
        from visiontl.config.splits import check_split_keys

        check_split_keys(self)
        return self

    @property
    def size_hw(self) -> tuple[int, int] | None:
        """``image_size`` as (height, width), or ``None`` for the model's own size."""
        return image_hw(self.image_size)


class ModelSection(Section):
    """Which model and which initial weights."""

    id: str = Field(
        ...,
        description="Model id 'family:name', e.g. 'timm:efficientnet_b0', "
        "'torchvision:squeezenet1_1'. List them with: visiontl models.",
    )
    pretrained: bool = Field(
        False,
        description="Load the family's published pretrained weights (hub, URL or local cache).",
    )
    weights: str | None = Field(
        None,
        description="Local weights file (state_dict or checkpoint), absolute or relative to the "
        "data root; wins over pretrained. A mismatched head is re-initialised.",
    )
    trust_weights: bool = Field(
        False,
        description="Allow model.weights to be read by a loader that can run code stored in the "
        "file (a full pickle, as some Ultralytics checkpoints need). Only for files you made or "
        "trust; a warning is printed. Without it such files are refused.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Family-specific build options (e.g. drop_rate for timm)."
    )

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        from visiontl.errors import ConfigError
        from visiontl.ids import parse_model_id

        try:
            parse_model_id(value)
        except ConfigError as exc:  # pydantic reports ValueError with the field path
            raise ValueError(str(exc)) from None
        return value


class PhaseSpec(Section):
    """One explicit phase of a custom strategy."""

    name: str = Field(..., description="Phase name shown in the plan and the metrics.")
    train: list[str] | int | Literal["all", "head"] = Field(
        ...,
        description="Groups that train: a list of group names, 'head', 'all', or an integer k "
        "for the head plus the last k other groups.",
    )
    epochs: int = Field(..., ge=1, description="Epochs in this phase.")
    lr: LearningRate | None = Field(None, description="Learning rate(s) for this phase; default: optimizer.lr.")
    bn: BnPolicy | None = Field(None, description="BatchNorm policy for this phase; default: strategy.bn.")
    augmentation: AugmentationPreset | None = Field(
        None, description="Augmentation preset for this phase; default: augmentation.preset."
    )

    @field_validator("train")
    @classmethod
    def _some_groups(cls, value: list[str] | int | str) -> list[str] | int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError(f"an integer k trains the head plus the last k groups: it must be 0 or more, not {value}")
        if isinstance(value, list) and not value:
            raise ValueError("the list of groups is empty: name at least one group, or use 'head' or 'all'")
        return value

    @field_validator("lr", mode="before")
    @classmethod
    def _lr(cls, value: Any) -> Any:
        return check_learning_rate(value)


class StrategySection(Section):
    """How to transfer: which groups train in which phase."""

    name: Literal["feature_extraction", "progressive", "full", "custom"] = Field(
        "feature_extraction",
        description="feature_extraction: head only; progressive: head, then the last k groups, "
        "then all; full: everything from the start; custom: the phases listed below.",
    )
    phase_epochs: list[int] | None = Field(
        None,
        description="Epochs of each progressive phase (three numbers); default: train.epochs split "
        "into three.",
    )
    unfreeze_last: int = Field(
        2, ge=1, description="Progressive: how many groups before the head join in the middle phase."
    )
    bn: BnPolicy = Field(
        "freeze",
        description="BatchNorm in frozen groups: 'freeze' keeps running statistics fixed and the "
        "layers in eval mode; 'train' keeps BN trainable everywhere; 'eval' puts every BN in eval.",
    )
    head_augmentation: AugmentationPreset | None = Field(
        None,
        description="Progressive: augmentation preset of the head-only phase ('none' lets its backbone "
        "features be cached); default: augmentation.preset.",
    )
    phases: list[PhaseSpec] | None = Field(None, description="The phases of a custom strategy.")

    @field_validator("phase_epochs")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(e < 1 for e in value)):
            raise ValueError("every phase needs at least 1 epoch")
        return value

    @model_validator(mode="after")
    def _custom_needs_phases(self) -> StrategySection:
        if self.name == "custom" and not self.phases:
            raise ValueError("strategy 'custom' needs a non-empty 'phases' list")
        if self.name != "custom" and self.phases:
            raise ValueError(f"'phases' is only used by strategy 'custom', not '{self.name}'")
        return self


class OptimizerSection(Section):
    """The optimizer and its per-group learning rates."""

    name: Literal["adamw", "sgd"] = Field("adamw", description="Optimizer.")
    lr: LearningRate = Field(
        1e-3,
        description="Learning rate: one value, [low, high] spread geometrically from the first "
        "group to the head, or a {group: lr} map with an optional 'default'.",
    )
    weight_decay: float = Field(0.01, ge=0.0, description="Decoupled (AdamW) or L2 (SGD) weight decay.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    nesterov: bool = Field(True, description="SGD Nesterov momentum.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas, each in [0, 1).")
    grad_clip: float | None = Field(None, gt=0.0, description="Clip the gradient norm to this value.")

    @field_validator("lr", mode="before")
    @classmethod
    def _lr(cls, value: Any) -> Any:
        return check_learning_rate(value)

    @field_validator("betas")
    @classmethod
    def _betas(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"each beta must be in [0, 1), not {list(value)}")
        return value


class SchedulerSection(Section):
    """The learning-rate schedule, restarted at each phase boundary."""

    name: Literal["none", "onecycle", "cosine", "cosine_restarts", "plateau"] = Field(
        "cosine", description="Schedule within each phase."
    )
    warmup_epochs: float = Field(0.0, ge=0.0, description="Linear warm-up at the start of each phase (cosine).")
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="Cosine floor as a fraction of the peak.")
    pct_start: float = Field(0.3, gt=0.0, lt=1.0, description="OneCycle: fraction of the phase spent rising.")
    restart_epochs: int = Field(1, ge=1, description="cosine_restarts: epochs of the first cycle (T_0).")
    restart_mult: int = Field(1, ge=1, description="cosine_restarts: cycle growth factor (T_mult).")
    patience: int = Field(2, ge=0, description="plateau: epochs without improvement before reducing.")
    factor: float = Field(0.1, gt=0.0, lt=1.0, description="plateau: reduction factor.")


class AugmentationSection(Section):
    """Training-time augmentation."""

    preset: AugmentationPreset = Field(
        "auto",
        description="none: resize and centre-crop only (allows feature caching); light, standard, "
        "strong: increasingly heavy; auto: chosen from the number of images per class.",
    )
    mixup: float = Field(0.0, ge=0.0, description="Mixup alpha (0 disables).")
    cutmix: float = Field(0.0, ge=0.0, description="CutMix alpha (0 disables).")
    mix_prob: float = Field(1.0, ge=0.0, le=1.0, description="Probability of mixing a batch when mixup/cutmix is on.")


class LossSection(Section):
    """The training loss."""

    name: str = Field("auto", description="Loss; 'auto' picks the task's default (cross-entropy for classification).")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="Label smoothing.")
    class_weights: list[float] | Literal["balanced"] | None = Field(
        None, description="Per-class loss weights, or 'balanced' (inverse class frequency)."
    )
    terms: dict[str, float] | None = Field(
        None,
        description="A weighted sum of losses instead of name, e.g. {cross_entropy: 1.0, dice: 0.5} "
        "(segmentation: cross_entropy, dice, focal).",
    )
    focal_gamma: float = Field(2.0, ge=0.0, description="Focal loss focusing parameter.")

    @field_validator("class_weights")
    @classmethod
    def _class_weights(cls, value: list[float] | str | None) -> list[float] | str | None:
        if isinstance(value, list) and (any(w < 0 for w in value) or not any(w > 0 for w in value)):
            raise ValueError(f"class weights must be 0 or more and not all 0, not {value}")
        return value

    @field_validator("terms")
    @classmethod
    def _terms(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and (not value or any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values())):
            raise ValueError(f"loss term weights must be 0 or more, with at least one above 0, not {value}")
        return value


class EarlyStoppingSection(Section):
    """Stop when the validation metric stops improving."""

    patience: int | None = Field(None, ge=1, description="Epochs without improvement before stopping; null disables.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts as an improvement.")


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class TrainSection(Section):
    """How to run training."""

    epochs: int = Field(10, ge=1, description="Epochs for single-phase strategies (and the default split of progressive).")
    batch_size: int = Field(32, ge=1, description="Images per batch.")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32, bf16 autocast (CPU and CUDA), or fp16 autocast with loss scaling (CUDA)."
    )
    seed: int = Field(0, description="Seed of everything random in the run.")
    workers: int = Field(0, ge=0, description="Data-loading worker processes.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: torch's own.")
    channels_last: bool = Field(False, description="Use the channels_last memory format.")
    cache_features: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Reuse backbone features across the epochs of a head-only phase with deterministic "
        "preprocessing: auto (when possible), on (fail if impossible), off.",
    )
    early_stopping: EarlyStoppingSection = Field(default_factory=EarlyStoppingSection)
    progress: Literal["bars", "lines", "none"] = Field(
        "bars",
        description="What training prints: 'bars' (progress bars on a terminal, and one line per epoch), "
        "'lines' (one line per epoch only; also false), 'none' (nothing per epoch). true means 'bars'.",
    )

    @field_validator("progress", mode="before")
    @classmethod
    def _progress_bool(cls, value: Any) -> Any:
        # A boolean is what older recipes hold: false always meant "no bars", never "silence".
        if isinstance(value, bool):
            return "bars" if value else "lines"
        return value

    @field_validator("cache_features", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare on/off as a boolean; take it as the user meant it.
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, not {value!r}")
        return value


class EvalSection(Section):
    """How to evaluate."""

    metric: str | None = Field(
        None,
        description="Metric that decides the best epoch and early stopping, in the task's direction for it "
        "(lowest wins for val_loss and errors); default: the task's primary metric (accuracy).",
    )
    topk: int = Field(5, ge=1, description="k of the top-k accuracy (capped at the number of classes).")
    score_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Lowest score of a predicted object that predict draws and lists."
    )
    inference: Literal["auto", "resize", "sliding"] = Field(
        "auto",
        description="Segmentation on images of any size: resize to the input size and back (data.resize), slide "
        "a window at the image's own resolution, or auto: predict slides windows over an image with a side more "
        "than twice the input size and resizes the others; validation and eval resize.",
    )
    window_overlap: float = Field(0.25, ge=0.0, lt=1.0, description="Overlap of sliding windows (fraction of the window).")


class OutputSection(Section):
    """Where results go."""

    dir: str = Field("runs", description="Folder of run directories: <dir>/<task>/<name>.")
    name: str | None = Field(
        None,
        description="Run name, one plain folder name (no '/', '..' or absolute path); default: the recipe "
        "file's stem. Never overwritten: -2, -3 ... are appended.",
    )
    checkpoints: bool = Field(True, description="Write best.pt and last.pt.")
    plots: bool = Field(True, description="Write curves and confusion-matrix PNGs.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        from visiontl.errors import ConfigError
        from visiontl.runs.layout import check_run_name

        if value is None:
            return value
        try:
            return check_run_name(value)
        except ConfigError as exc:  # pydantic reports ValueError with the field path
            raise ValueError(exc.message) from None


class EnsembleSection(Section):
    """Several trained classifiers used as one model (weighted softmax averaging)."""

    members: list[str] = Field(..., min_length=2, description="Run directories or checkpoints of the members.")
    weights: list[float] | None = Field(None, description="Weight of each member's softmax; default: equal.")

    @model_validator(mode="after")
    def _weights_match(self) -> EnsembleSection:
        if self.weights is not None and len(self.weights) != len(self.members):
            raise ValueError(f"ensemble.weights has {len(self.weights)} values for {len(self.members)} members")
        if self.weights is not None and (any(w < 0 for w in self.weights) or sum(self.weights) <= 0):
            raise ValueError("ensemble.weights must be non-negative and not all zero")
        return self


class DistillSection(Section):
    """Knowledge distillation: the student also learns the teacher's softened outputs."""

    teacher: str | None = Field(None, description="A trained run directory or checkpoint to learn from.")
    ensemble: EnsembleSection | None = Field(None, description="An ensemble of teachers, instead of one teacher.")
    temperature: float = Field(4.0, gt=0.0, description="Softening temperature of both teacher and student logits.")
    weight: float = Field(0.5, ge=0.0, le=1.0, description="Share of the distillation term in the loss (the rest is the task loss).")

    @model_validator(mode="after")
    def _one_teacher(self) -> DistillSection:
        if (self.teacher is None) == (self.ensemble is None):
            raise ValueError("distill needs exactly one of 'teacher' or 'ensemble'")
        return self


class ExportSection(Section):
    """Exports written and verified at the end of a run (see ``visiontl export``)."""

    formats: list[Literal["onnx", "openvino", "torchscript"]] = Field(
        default_factory=list, description="Formats to export the best checkpoint to."
    )
    precision: Literal["fp32", "bf16", "int8"] = Field("fp32", description="Precision of the exports (int8: post-training quantisation).")
    calib: str | None = Field(None, description="Images to calibrate int8 on (default: the training images).")


class Recipe(Section):
    """A complete visiontl recipe."""

    task: str = Field("classification", description="Task: classification (more with installed plugins).")
    data: DataSection
    model: ModelSection
    strategy: StrategySection = Field(default_factory=StrategySection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    scheduler: SchedulerSection = Field(default_factory=SchedulerSection)
    augmentation: AugmentationSection = Field(default_factory=AugmentationSection)
    loss: LossSection = Field(default_factory=LossSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    output: OutputSection = Field(default_factory=OutputSection)
    ensemble: EnsembleSection | None = Field(
        None, description="Use trained members as one model (eval, predict, benchmark, export); no training."
    )
    distill: DistillSection | None = Field(None, description="Train the model as a student of a teacher or an ensemble.")
    export: ExportSection | None = Field(None, description="Export the trained model at the end of the run.")
    search: SearchSection | None = Field(
        None, description="Settings of visiontl search (docs/search.md); visiontl run ignores them."
    )
