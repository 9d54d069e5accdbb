"""The ``multilabel`` task: any number of labels per image.

What a task adapter decides, and the shared training loop, freezing engine, run layout and
reports do not: how the data is read (:mod:`visiontl_example.data`), how a batch is collated,
the loss (binary cross-entropy on one logit per class), the metrics (mean average precision
decides the best epoch; :mod:`visiontl_example.metrics`) and what a prediction is (every
class whose probability reaches ``eval.score_threshold``).

Recipe settings it reads: ``data.format: csv``, ``data.root``, ``data.train``/``data.val``
(CSV files under root), or ``data.val_split``/``data.val_last``, ``data.image_root``,
``data.class_names``, ``data.limit`` (rows per split), ``data.synthesize: shapes``;
``loss.name`` (``auto``/``bce``), ``loss.class_weights`` (``balanced`` sets BCE's
``pos_weight`` to negatives/positives per class), ``loss.label_smoothing``;
``eval.score_threshold``; ``augmentation.preset``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.contracts import IMAGE_VECTOR
from visiontl.errors import ConfigError, DataError
from visiontl.ids import suggest
from visiontl.tasks.base import Batch, DataInfo, Evaluator, PredictionResult, TaskAdapter

from visiontl_example.data import (
    MultiLabelDataset,
    Unreadable,
    class_names_of,
    counts,
    make_shapes,
    read_rows,
    scan,
    split_off,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from visiontl.config.schema import Recipe
    from visiontl.contracts import Preprocessing

LOSSES = ("auto", "bce", "binary_cross_entropy")


class MultiLabelEvaluator(Evaluator):
    """Collects logits and multi-hot targets; computes the metrics and the validation loss."""

    def __init__(self, class_names: Sequence[str], threshold: float) -> None:
        self.class_names = list(class_names)
        self.threshold = threshold
        self._logits: list[Any] = []
        self._targets: list[Any] = []

    def update(self, outputs: Any, targets: Any) -> None:
        self._logits.append(outputs.detach().float().cpu())
        self._targets.append(targets.detach().float().cpu())

    def compute(self) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        from visiontl_example.metrics import multilabel_metrics

        if not self._logits:
            raise DataError("The validation set produced no predictions (every image was unreadable?).")
        logits, targets = torch.cat(self._logits), torch.cat(self._targets)
        metrics = multilabel_metrics(targets.numpy(), torch.sigmoid(logits).numpy(), self.class_names, self.threshold)
        metrics["val_loss"] = float(F.binary_cross_entropy_with_logits(logits, targets).item())
        return metrics


class MultiLabelTask(TaskAdapter):
    """Multi-label image classification (tagging).

    Its output contract, ``IMAGE_VECTOR`` (one logit per class, ``(batch, classes)``), is all
    a family needs to know: tinycnn, timm and torchvision classifiers build for it as they do
    for classification, with no code for this task in them.
    """

    name = "multilabel"
    formats = ("csv",)
    primary_metric = "map"
    higher_is_better = True
    output = IMAGE_VECTOR
    report_heading = "Per class (final epoch)"

    # ------------------------------------------------------------------ data
    def inspect(self, recipe: Recipe, data_root: Path) -> DataInfo:
        from visiontl.data.classification import resolve_dir

        data = recipe.data
        if data.format not in self.formats:
            raise ConfigError(
                f"data.format '{data.format}' is not a multilabel format.",
                fix="use data.format: csv (columns path,labels; see the example plugin's README)",
            )
        root = resolve_dir(data.root, data_root)
        if data.synthesize and not root.exists():
            make_shapes(root)
        if not root.exists():
            raise DataError(
                f"Dataset '{data.root}' not found (looked in {root}).",
                fix="set data.root to an existing folder, or data.synthesize: shapes to generate one",
            )
        image_root = resolve_dir(data.image_root, data_root) if data.image_root else None
        train_csv = root / data.train
        names = list(data.class_names) if data.class_names else class_names_of(read_rows(train_csv))
        if len(names) < 1:
            raise DataError(f"'{train_csv}' names no labels at all.", fix="fill the labels column")
        train = scan(train_csv, image_root, names)
        skipped = dict(train.skipped)
        if data.val:
            val_split = scan(root / data.val, image_root, names)
            skipped.update(val_split.skipped)
            train_items, val_items = train.items, val_split.items
        elif data.val_split is not None or data.val_last is not None:
            train_items, val_items = split_off(train.items, data.val_split, data.val_last, data.split_seed)
        else:
            raise ConfigError(
                "data.val is null and neither data.val_split nor data.val_last is set: there is no validation set.",
                fix="set data.val to a CSV file, or data.val_split (e.g. 0.2)",
            )
        if data.limit is not None:
            train_items, val_items = train_items[: data.limit], val_items[: data.limit]
        if not train_items or not val_items:
            raise DataError(
                f"No usable {'training' if not train_items else 'validation'} images ({len(skipped)} file(s) skipped).",
                fix="check the CSV paths (relative to the CSV's folder or data.image_root) and the files listed as skipped",
            )
        return DataInfo(
            class_names=names,
            counts={"train": counts(train_items, names), "val": counts(val_items, names)},
            skipped=skipped,
            extras={
                "train_items": train_items,
                "val_items": val_items,
                "images": {"train": len(train_items), "val": len(val_items)},
                "summary": {"unlabelled_images": {"train": sum(not it.labels for it in train_items), "val": sum(not it.labels for it in val_items)}},
            },
        )

    def datasets(self, recipe: Recipe, info: DataInfo, preprocessing: Preprocessing, data_root: Path) -> tuple[Any, Any]:
        from visiontl.data.transforms import eval_transform, train_transform

        pre = preprocessing.with_size(recipe.data.image_size)
        # "auto" picks by images per class: here an image counts for each label it carries.
        preset = self.resolved_preset(recipe, info)
        train = MultiLabelDataset(info.extras["train_items"], info.num_classes, train_transform(pre, preset))
        val = MultiLabelDataset(info.extras["val_items"], info.num_classes, eval_transform(pre))
        return train, val

    def deterministic_train_transform(self, recipe: Recipe) -> bool:
        return recipe.augmentation.preset == "none"

    def collate(self, items: Sequence[Any]) -> Batch:
        import torch

        good = [it for it in items if not isinstance(it, Unreadable)]
        skipped = {it.path: it.reason for it in items if isinstance(it, Unreadable)}
        if not good:
            return Batch(torch.empty(0), torch.empty(0), [], [], skipped)
        inputs = torch.stack([it[0] for it in good])
        targets = torch.stack([it[1] for it in good])
        return Batch(inputs, targets, [it[2] for it in good], [it[3] for it in good], skipped)

    # ------------------------------------------------------------------ loss
    def loss_function(self, recipe: Recipe, info: DataInfo) -> Callable[[Any, Any], torch.Tensor]:
        import torch
        import torch.nn.functional as F

        spec = recipe.loss
        if spec.name not in LOSSES:
            close = suggest(spec.name, LOSSES, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"loss.name '{spec.name}' is not a multilabel loss.{hint}", fix=f"use one of: {', '.join(LOSSES)}")
        if spec.terms:
            raise ConfigError("loss.terms is not supported by the multilabel task.", fix="remove loss.terms; use loss.name: bce")
        pos_weight = None
        if spec.class_weights == "balanced":
            n = info.images("train")
            positives = torch.tensor([max(1, info.counts["train"][c]) for c in info.class_names], dtype=torch.float32)
            pos_weight = ((n - positives).clamp(min=1.0) / positives).clamp(max=100.0)
        elif spec.class_weights is not None:
            if len(spec.class_weights) != info.num_classes:
                raise ConfigError(f"loss.class_weights has {len(spec.class_weights)} values for {info.num_classes} classes.")
            pos_weight = torch.tensor(spec.class_weights, dtype=torch.float32)
        smoothing = spec.label_smoothing

        def loss(outputs: Any, targets: Any) -> torch.Tensor:
            # Smoothing pulls each 0/1 target towards 1/2 (binary labels have two classes).
            soft = targets.float() * (1 - smoothing) + smoothing / 2 if smoothing else targets.float()
            weight = pos_weight.to(outputs.device) if pos_weight is not None else None
            return F.binary_cross_entropy_with_logits(outputs.float(), soft, pos_weight=weight)

        return loss

    # ------------------------------------------------------------------ eval
    def evaluator(self, recipe: Recipe, info: DataInfo) -> Evaluator:
        return MultiLabelEvaluator(info.class_names, recipe.eval.score_threshold)

    def report_lines(self, metrics: dict[str, Any], info: DataInfo) -> list[str]:
        lines = ["| class | AP | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|---:|"]
        for name, row in metrics.get("per_class", {}).items():
            ap = f"{row['ap']:.3f}" if row["ap"] is not None else "-"
            lines.append(f"| {name} | {ap} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |")
        return lines

    # ------------------------------------------------------------------ inference
    def predict(
        self,
        model: Any,
        image: Any,
        preprocessing: Preprocessing,
        class_names: Sequence[str],
        *,
        topk: int = 5,
        score_threshold: float = 0.5,
        recipe: Recipe | None = None,
    ) -> PredictionResult:
        import torch
        from visiontl.data.transforms import eval_transform

        x = eval_transform(preprocessing)(image).unsqueeze(0)
        with torch.no_grad():
            probs = torch.sigmoid(model(x).float())[0].tolist()
        ranked = sorted(zip(class_names, probs, strict=True), key=lambda pair: -pair[1])
        present = [(name, float(p)) for name, p in ranked if p >= score_threshold][:topk]
        return PredictionResult(present, {"scores": {name: round(float(p), 6) for name, p in ranked}})

    # ------------------------------------------------------------------ contract kit
    def example_batch(self, num_classes: int, input_size: tuple[int, int], batch_size: int = 2) -> Batch:
        import torch

        g = torch.Generator().manual_seed(0)
        inputs = torch.rand(batch_size, 3, *input_size, generator=g)
        # Every class positive in some image and negative in another.
        targets = torch.tensor([[(i + c) % 2 for c in range(num_classes)] for i in range(batch_size)], dtype=torch.float32)
        return Batch(inputs, targets, list(range(batch_size)), [f"example{i}" for i in range(batch_size)])

    def check_outputs(self, outputs: Any, num_classes: int, batch: Batch) -> None:
        shape = tuple(outputs.shape)
        assert shape == (len(batch), num_classes), f"multilabel outputs should be (batch, classes) = {(len(batch), num_classes)}, got {shape}"
        assert outputs.is_floating_point(), f"multilabel outputs should be float logits, got {outputs.dtype}"


def tasks() -> list[TaskAdapter]:
    """The adapters this module contributes."""
    return [MultiLabelTask()]
