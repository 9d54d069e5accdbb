"""What a task is to the core: datasets, loss, metrics and prediction for one kind of label.

A :class:`TaskAdapter` is contributed through the ``visiontl_tasks`` hook. The shared training
loop is written against this interface only, so a new task (a third party's regression or
keypoint task, say) plugs into the same loop, freezing engine, run layout and reports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from visiontl.config.schema import Recipe
    from visiontl.contracts import Preprocessing
    from visiontl.tasks.selection import SelectionMetric


@dataclass
class DataInfo:
    """What inspecting a dataset found, before any model is built.

    Attributes:
        class_names: class names in label order.
        counts: split -> class name -> number of usable items.
        skipped: path -> reason, for files left out while scanning (unreadable, no label...).
        extras: task-specific facts (annotation files, format details); a JSON-serialisable
            ``extras["summary"]`` dict is copied into the run's summary.json.
        provenance: where the data came from, JSON-serialisable: ``{"data_root": abs path,
            "splits": {split: {"path": abs path, "files": N, "sha256": hash of the sorted
            relative file list}}}``. Recorded in the run; ``eval`` warns when it differs.
    """

    class_names: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def total(self, split: str) -> int:
        """Sum of the counts of a split (images for classification, objects for detection)."""
        return sum(self.counts.get(split, {}).values())

    def images(self, split: str) -> int:
        """Images in a split: ``extras["images"][split]`` when a task counts objects per class."""
        images = self.extras.get("images")
        if isinstance(images, dict) and split in images:
            return int(images[split])
        return self.total(split)

    def min_per_class(self, split: str = "train") -> int:
        values = list(self.counts.get(split, {}).values())
        return min(values) if values else 0


@dataclass
class Batch:
    """A collated batch.

    Attributes:
        inputs: the model input (a tensor, or a list of tensors for detection).
        targets: the labels in the task's own form.
        indices: dataset indices of the items (feature caching keys on them).
        paths: file paths of the items (for reports).
        skipped: path -> reason for items of this batch that could not be read.
    """

    inputs: Any
    targets: Any
    indices: list[int]
    paths: list[str]
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class PredictionResult:
    """What a task predicts for one image.

    Attributes:
        labels: ``(class name, score)`` pairs: the top-k classes (classification) or one per
            detected object / present class (detection, segmentation), best first.
        details: task-specific, JSON-serialisable data (boxes, mask areas ...).
        score: what the number of each label is, for printing: ``probability`` (a class's
            softmax), ``score`` (an object's confidence) or ``area`` (the fraction of the
            image's pixels given to the class).
    """

    labels: list[tuple[str, float]]
    details: dict[str, Any] = field(default_factory=dict)
    score: str = "probability"


class Evaluator(ABC):
    """Accumulates predictions over a dataset and computes the task's metrics."""

    @abstractmethod
    def update(self, outputs: Any, targets: Any) -> None:
        """Add one batch of model outputs and targets."""

    @abstractmethod
    def compute(self) -> dict[str, Any]:
        """The metrics over everything added so far (scalars and small tables)."""


class TaskAdapter(ABC):
    """The task-specific half of training and evaluation.

    Attributes:
        name: the task's name in recipes (``task: classification``).
        formats: dataset formats it reads (``data.format``).
        primary_metric: the metric that decides the best epoch.
        higher_is_better: direction of the primary metric (``False`` for an error such as MAE).
        output: what the task needs from a model, an output contract of
            :mod:`visiontl.contracts`: ``IMAGE_VECTOR`` (``(batch, K)``), ``DENSE_MAP``
            (``(batch, K, H, W)``), ``DETECTOR``, or a plugin's own. Every family that
            provides that output for any task (``PluginInfo.outputs``: timm and torchvision
            classifiers, torchvision segmenters, SMP ...) builds models for the task, with
            ``K`` = ``len(DataInfo.class_names)``. Empty: only families that know the task by
            name serve it.
        label_kind: what ``DataInfo.class_names`` are, for reports (``classes``; a regression's
            ``targets``).
        report_heading: the heading of :meth:`report_lines` in report.md.
    """

    name: str = ""
    formats: tuple[str, ...] = ()
    primary_metric: str = ""
    higher_is_better: bool = True
    output: str = ""
    label_kind: str = "classes"
    report_heading: str = "Final epoch"
    #: Scalar metrics the evaluator reports that ``eval.metric`` may name. Placeholders:
    #: ``<topk>`` (eval.topk capped at the class count), ``<class>`` (a class name in
    #: metric-key form); any other ``<...>`` matches any text. Empty: not declared, not checked.
    metric_names: tuple[str, ...] = ()
    #: Metrics (same placeholders) for which lower is better, besides the primary metric when
    #: ``higher_is_better`` is False: ``eval.metric`` may name them too, and the best epoch,
    #: early stopping and a plateau scheduler then minimise them. Every other metric is
    #: higher-is-better.
    lower_is_better_metrics: tuple[str, ...] = ("val_loss",)

    # ------------------------------------------------------------------ metrics
    def higher_is_better_for(self, metric: str | None = None) -> bool:
        """The direction of ``metric`` (``None``: the primary metric).

        Example:
            >>> from visiontl.tasks.classification import ClassificationTask
            >>> t = ClassificationTask()
            >>> t.higher_is_better_for("accuracy"), t.higher_is_better_for("val_loss")
            (True, False)
        """
        if metric is None or metric == self.primary_metric:
            return self.higher_is_better
        return not any(metric_matches(name, metric) for name in self.lower_is_better_metrics)

    def selection_metric(self) -> SelectionMetric:
        """What ``visiontl select`` ranks models by for this task.

        The default is a labelled proxy chosen from :attr:`output` (a backbone's ImageNet
        top-1 for image-level outputs, an encoder's for dense maps, COCO box mAP for
        detectors; see :func:`visiontl.tasks.selection.proxy_metric`). A task whose models
        publish figures of its own returns the rules that match them (metric *and* dataset).
        """
        from visiontl.tasks.selection import proxy_metric

        return proxy_metric(self.output, self.name, self.primary_metric)

    def large_data_settings(self) -> dict[str, Any]:
        """Recipe settings ``visiontl select`` advises for large datasets (full fine-tuning),
        as ``{"section.field": value}``; only settings this task reads. Default: none."""
        return {}

    def labels_line(self, info: DataInfo) -> str:
        """How reports name the labels: ``"2 classes"``, ``"1 target"``."""
        return count_of(info.num_classes, self.label_kind)

    # ------------------------------------------------------------------ data
    @abstractmethod
    def inspect(self, recipe: Recipe, data_root: Path) -> DataInfo:
        """Scan the dataset (class names, counts, unreadable files) without a model."""

    @abstractmethod
    def datasets(
        self,
        recipe: Recipe,
        info: DataInfo,
        preprocessing: Preprocessing,
        data_root: Path,
    ) -> tuple[Dataset, Dataset]:
        """The train and validation datasets, with transforms resolved from the model."""

    @abstractmethod
    def collate(self, items: Sequence[Any]) -> Batch:
        """Collate dataset items (some may be unreadable markers) into a :class:`Batch`."""

    def eval_dataset(self, recipe: Recipe, info: DataInfo, preprocessing: Preprocessing, data_root: Path, split: str = "val") -> Dataset:
        """The evaluation dataset of one split, with the validation transform.

        Args:
            split: ``val`` (the second dataset of :meth:`datasets`) or ``test`` (the recipe's
                ``data.test``, as :meth:`inspect` or :meth:`inspect_test` found it).

        Raises:
            ConfigError: the task has no such split (the default knows ``val`` only).
        """
        if split == "val":
            return self.datasets(recipe, info, preprocessing, data_root)[1]
        raise ConfigError(
            f"Task '{self.name}' cannot score a '{split}' split (its adapter does not implement eval_dataset for it).",
            fix="score its validation split (visiontl eval RUN), or remove data.test",
        )

    def inspect_test(self, recipe: Recipe, data_root: Path, class_names: Sequence[str]) -> DataInfo:
        """Scan only the recipe's test split (``data.test`` ...) for a trained model whose
        classes are ``class_names``: what ``visiontl eval --split test`` and ``eval --images``
        score. The counts, extras and provenance are under ``test``; training and validation
        data are not read.

        Raises:
            ConfigError: the task cannot (the default), or the recipe names no test split.
        """
        raise ConfigError(
            f"Task '{self.name}' cannot score a test split or explicit folders (its adapter does not implement inspect_test).",
            fix="score its validation split: visiontl eval RUN",
        )

    def explicit_split(self, recipe: Recipe, images: Path, labels: Path | None) -> dict[str, Any]:
        """The ``data`` settings that make ``images`` (with ``labels``) the test split, for
        ``visiontl eval RUN --images DIR [--masks DIR | --labels FILE]``.

        The core first clears every split key of the stored recipe (``val_last``,
        ``val_images`` ...) so that nothing of the training layout leaks in, keeping the class
        settings (``class_names``, ``value_map``, ``yaml`` ...); the task returns what to set.

        Raises:
            ConfigError: the labels are missing or of the wrong kind for the task.
        """
        raise ConfigError(f"Task '{self.name}' cannot score explicit folders.", fix="score its validation split: visiontl eval RUN")

    def resolved_preset(self, recipe: Recipe, info: DataInfo) -> str:
        """The augmentation preset to use: ``auto`` picks by images per class (see
        :func:`visiontl.data.transforms.auto_preset`); other presets are taken as given."""
        from visiontl.data.transforms import auto_preset

        preset = recipe.augmentation.preset
        if preset != "auto":
            return preset
        per_class = info.min_per_class("train") or info.total("train")
        return auto_preset(per_class)

    def deterministic_train_transform(self, recipe: Recipe) -> bool:
        """Whether training items are the same every epoch (needed for feature caching)."""
        return False

    # ------------------------------------------------------------------ model io
    @abstractmethod
    def loss_function(self, recipe: Recipe, info: DataInfo) -> Callable[[Any, Any], torch.Tensor]:
        """``loss(outputs, targets)`` for this recipe."""

    def prepare_train_batch(self, batch: Batch, recipe: Recipe, info: DataInfo, generator: torch.Generator) -> Batch:
        """Batch-level augmentation (mixup/cutmix for classification). Default: unchanged."""
        return batch

    def forward_train(self, model: nn.Module, batch: Batch, loss: Callable[[Any, Any], torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """One training forward: ``(loss, outputs)``. Default: ``loss(model(inputs), targets)``."""
        outputs = model(batch.inputs)
        return loss(outputs, batch.targets), outputs

    def forward_eval(self, model: nn.Module, batch: Batch) -> Any:
        """One evaluation forward (model in eval mode, no grad). Default: ``model(inputs)``."""
        return model(batch.inputs)

    def move_batch(self, batch: Batch, device: torch.device, channels_last: bool = False) -> Batch:
        """Move a batch to ``device``. Default: inputs and targets that are tensors."""
        import torch

        inputs = batch.inputs
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.to(device, non_blocking=True)
            if channels_last and inputs.ndim == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
        targets = batch.targets.to(device, non_blocking=True) if isinstance(batch.targets, torch.Tensor) else batch.targets
        return Batch(inputs, targets, batch.indices, batch.paths, batch.skipped)

    @abstractmethod
    def evaluator(self, recipe: Recipe, info: DataInfo) -> Evaluator:
        """A fresh evaluator for one pass over the validation set."""

    # ------------------------------------------------------------------ inference
    def predict(
        self,
        model: nn.Module,
        image: Any,
        preprocessing: Preprocessing,
        class_names: Sequence[str],
        *,
        topk: int = 5,
        score_threshold: float = 0.5,
        recipe: Recipe | None = None,
    ) -> PredictionResult:
        """Predict one RGB PIL image with an eval-mode model (``recipe``: the trained run's,
        for task settings such as ``eval.inference``)."""
        raise NotImplementedError(f"task '{self.name}' has no prediction for single images")

    def draw(self, image: Any, result: PredictionResult, class_names: Sequence[str]) -> Any | None:
        """An overlay of ``result`` on ``image`` (a PIL image) to save as PNG, or ``None``."""
        return None

    # ------------------------------------------------------------------ contract kit
    def example_batch(self, num_classes: int, input_size: tuple[int, int], batch_size: int = 2) -> Batch:
        """A small random batch in this task's form (used by :mod:`visiontl.testing`)."""
        raise NotImplementedError(f"task '{self.name}' provides no example batch")

    def check_outputs(self, outputs: Any, num_classes: int, batch: Batch) -> None:
        """Raise ``AssertionError`` if eval-mode ``outputs`` do not have the task's form.

        The default accepts anything; tasks override it with their output contract.
        """
        return None

    # ------------------------------------------------------------------ ensembles
    def combine_outputs(self, outputs: Sequence[Any], weights: Any) -> Any:
        """One output from several models' eval outputs for the same batch (an ensemble).

        Args:
            outputs: each member's eval output, in this task's form.
            weights: one weight per member, summing to 1 (a 1-D tensor when called by an
                ensemble model: use tensor operations, so that exports trace them).

        Returns:
            The combined output, in the same form (the evaluator, prediction and export take
            it like one model's).

        Raises:
            NotImplementedError: the task does not say how its outputs combine (the default):
                ``visiontl.ensemble`` then refuses ensembles of it with that reason.
        """
        raise NotImplementedError(f"task '{self.name}' does not say how to combine several models' outputs (TaskAdapter.combine_outputs)")

    # ------------------------------------------------------------------ reports
    def plots(self, metrics: dict[str, Any], info: DataInfo, out_dir: Path) -> list[Path]:
        """Task-specific figures for the run directory (e.g. a confusion matrix)."""
        return []

    def report_lines(self, metrics: dict[str, Any], info: DataInfo) -> list[str]:
        """Task-specific lines for report.md, under :attr:`report_heading`."""
        return []


def count_of(n: int, kind: str) -> str:
    """``n`` labels of a kind, in words: ``count_of(3, "classes")`` is ``"3 classes"``,
    ``count_of(1, "targets")`` is ``"1 target"``.

    Example:
        >>> count_of(1, "classes"), count_of(2, "targets")
        ('1 class', '2 targets')
    """
    if n != 1:
        return f"{n} {kind}"
    return f"1 {kind[:-2] if kind.endswith('sses') else kind.removesuffix('s')}"


def metric_matches(declared: str, metric: str) -> bool:
    """Whether a declared metric name (``<...>`` placeholders match any text) names ``metric``.

    Example:
        >>> metric_matches("iou_<class>", "iou_person"), metric_matches("val_loss", "loss")
        (True, False)
    """
    import re

    parts = re.split(r"(<[^>]+>)", declared)
    pattern = "".join(".+" if re.fullmatch(r"<[^>]+>", p) else re.escape(p) for p in parts)
    return re.fullmatch(pattern, metric) is not None
