"""The classification task: ImageFolder/CSV data, cross-entropy, accuracy and friends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.contracts import IMAGE_VECTOR
from visiontl.data.classification import (
    ImageClassificationDataset,
    Sample,
    Unreadable,
    count_per_class,
    hold_out_last,
    limit_per_class,
    scan_csv,
    scan_imagefolder,
    stratified_split,
)
from visiontl.data.paths import provenance, resolve_data_path
from visiontl.errors import ConfigError, DataError
from visiontl.ids import suggest
from visiontl.tasks.base import Batch, DataInfo, Evaluator, PredictionResult, TaskAdapter
from visiontl.tasks.selection import IMAGENET_TOP1, SelectionMetric

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from visiontl.config.schema import Recipe
    from visiontl.contracts import Preprocessing


class ClassificationEvaluator(Evaluator):
    """Collects logits and labels; computes :func:`classification_metrics` plus val loss."""

    def __init__(self, class_names: Sequence[str], topk: int) -> None:
        self.class_names = list(class_names)
        self.topk = topk
        self._scores: list[Any] = []
        self._targets: list[Any] = []

    def update(self, outputs: Any, targets: Any) -> None:
        self._scores.append(outputs.detach().float().cpu())
        self._targets.append(targets.detach().cpu())

    def compute(self) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        from visiontl.metrics.classification import classification_metrics

        if not self._scores:
            raise DataError("The validation set produced no predictions (every image was unreadable?).")
        scores = torch.cat(self._scores)
        targets = torch.cat(self._targets)
        metrics = classification_metrics(targets.numpy(), scores.numpy(), self.class_names, self.topk)
        metrics["val_loss"] = float(F.cross_entropy(scores, targets).item())
        return metrics


class ClassificationTask(TaskAdapter):
    """Image classification (one label per image)."""

    name = "classification"
    formats = ("imagefolder", "csv")
    primary_metric = "accuracy"
    higher_is_better = True
    output = IMAGE_VECTOR
    report_heading = "Per class (final epoch)"
    #: What ``eval.metric`` may name (``<topk>``: eval.topk capped at the number of classes).
    metric_names = ("accuracy", "top<topk>_accuracy", "macro_precision", "macro_recall", "macro_f1", "val_loss")

    def selection_metric(self) -> SelectionMetric:
        """ImageNet-1k top-1, as the catalogues publish it (a figure on another dataset is
        shown for what it is, never ranked with these)."""
        return SelectionMetric("ImageNet top-1", (IMAGENET_TOP1,))

    def large_data_settings(self) -> dict[str, Any]:
        """Stronger regularisation for full fine-tuning on large data."""
        return {"loss.label_smoothing": 0.1, "augmentation.mixup": 0.2}

    # ------------------------------------------------------------------ data
    def _scan(self, recipe: Recipe, data_root: Path) -> tuple[list[str], list[Sample], list[Sample], dict[str, str]]:
        data = recipe.data
        if data.format not in self.formats:
            close = suggest(data.format, self.formats, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"data.format '{data.format}' is not a classification format.{hint}",
                fix=f"use one of: {', '.join(self.formats)}",
            )
        root = resolve_data_path(data.root, data_root, must_exist=not data.synthesize)
        if data.synthesize and not root.exists():
            from visiontl.data.synthetic import make_shapes

            make_shapes(root)
        skipped: dict[str, str] = {}
        if data.format == "imagefolder":
            names, train = scan_imagefolder(root / data.train, data.class_names)
            if data.val:
                _, val = scan_imagefolder(root / data.val, names)
            else:
                val = None
        else:
            image_root = resolve_data_path(data.image_root, data_root, what="data.image_root") if data.image_root else None
            names, train = scan_csv(root / data.train, image_root, data.class_names)
            val = scan_csv(root / data.val, image_root, names)[1] if data.val else None
        skipped.update(train.skipped)
        train_samples = train.samples
        if val is not None:
            skipped.update(val.skipped)
            val_samples = val.samples
        else:
            if data.val_last is not None:
                train_samples, val_samples = hold_out_last(train_samples, data.val_last)
            elif data.val_split is not None:
                train_samples, val_samples = stratified_split(train_samples, data.val_split, data.split_seed)
            else:
                raise ConfigError(
                    "data.val is null and neither data.val_split nor data.val_last is set: there is no validation set.",
                    fix="set data.val to a split folder/file, or data.val_split (e.g. 0.2), or data.val_last (e.g. 50)",
                )
        train_samples = limit_per_class(train_samples, data.limit)
        val_samples = limit_per_class(val_samples, data.limit)
        if not train_samples:
            raise DataError(
                f"No usable training images in '{root / data.train}' ({len(skipped)} file(s) skipped).",
                fix="check the folder layout <split>/<class>/<image> and the files listed as skipped",
            )
        if not val_samples:
            raise DataError("No usable validation images.", fix="check data.val or data.val_split")
        return names, train_samples, val_samples, skipped

    def inspect(self, recipe: Recipe, data_root: Path) -> DataInfo:
        names, train, val, skipped = self._scan(recipe, data_root)
        if len(names) < 2:
            raise DataError(f"Classification needs at least 2 classes; found {names}.")
        return DataInfo(
            class_names=names,
            counts={"train": count_per_class(train, names), "val": count_per_class(val, names)},
            skipped=skipped,
            extras={"train_samples": train, "val_samples": val},
            provenance=provenance(data_root, {"train": [s.path for s in train], "val": [s.path for s in val]}),
        )

    def datasets(self, recipe: Recipe, info: DataInfo, preprocessing: Preprocessing, data_root: Path) -> tuple[Any, Any]:
        from visiontl.data.transforms import eval_transform, train_transform

        pre = preprocessing.with_size(recipe.data.image_size)
        train = ImageClassificationDataset(info.extras["train_samples"], train_transform(pre, self.resolved_preset(recipe, info)))
        val = ImageClassificationDataset(info.extras["val_samples"], eval_transform(pre))
        return train, val

    def deterministic_train_transform(self, recipe: Recipe) -> bool:
        aug = recipe.augmentation
        return aug.preset == "none" and aug.mixup == 0 and aug.cutmix == 0

    def collate(self, items: Sequence[Any]) -> Batch:
        import torch

        good = [it for it in items if not isinstance(it, Unreadable)]
        skipped = {it.path: it.reason for it in items if isinstance(it, Unreadable)}
        if not good:
            return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), [], [], skipped)
        inputs = torch.stack([it[0] for it in good])
        targets = torch.tensor([it[1] for it in good], dtype=torch.long)
        return Batch(inputs, targets, [it[2] for it in good], [it[3] for it in good], skipped)

    # ------------------------------------------------------------------ loss
    def loss_function(self, recipe: Recipe, info: DataInfo) -> Callable[[Any, Any], torch.Tensor]:
        import torch
        from torch import nn

        if recipe.loss.name not in ("auto", "cross_entropy", "ce"):
            raise ConfigError(
                f"loss.name '{recipe.loss.name}' is not a classification loss.",
                fix="use 'auto' or 'cross_entropy'",
            )
        weight = None
        cw = recipe.loss.class_weights
        if cw == "balanced":
            counts = torch.tensor([max(1, info.counts["train"][n]) for n in info.class_names], dtype=torch.float32)
            weight = counts.sum() / (len(counts) * counts)
        elif cw is not None:
            if len(cw) != info.num_classes:
                raise ConfigError(f"loss.class_weights has {len(cw)} values for {info.num_classes} classes.")
            weight = torch.tensor(cw, dtype=torch.float32)
        criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=recipe.loss.label_smoothing)

        def loss(outputs: Any, targets: Any) -> torch.Tensor:
            if criterion.weight is not None and criterion.weight.device != outputs.device:
                criterion.to(outputs.device)
            # Soft targets (mixup/cutmix) are class probabilities; CrossEntropyLoss takes both.
            return criterion(outputs.float(), targets)

        return loss

    def prepare_train_batch(self, batch: Batch, recipe: Recipe, info: DataInfo, generator: torch.Generator) -> Batch:
        aug = recipe.augmentation
        if aug.mixup <= 0 and aug.cutmix <= 0:
            return batch
        from visiontl.train.mixing import mix_batch

        inputs, targets = mix_batch(batch.inputs, batch.targets, info.num_classes, aug.mixup, aug.cutmix, aug.mix_prob, generator)
        return Batch(inputs, targets, batch.indices, batch.paths, batch.skipped)

    def example_batch(self, num_classes: int, input_size: tuple[int, int], batch_size: int = 2) -> Batch:
        import torch

        g = torch.Generator().manual_seed(0)
        inputs = torch.rand(batch_size, 3, *input_size, generator=g)
        targets = torch.arange(batch_size) % num_classes
        return Batch(inputs, targets, list(range(batch_size)), [f"example{i}" for i in range(batch_size)])

    def check_outputs(self, outputs: Any, num_classes: int, batch: Batch) -> None:
        shape = tuple(outputs.shape)
        assert shape == (len(batch), num_classes), f"classification outputs should be (batch, classes) = {(len(batch), num_classes)}, got {shape}"

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
            probs = torch.softmax(model(x).float(), dim=1)[0]
        values, indices = probs.topk(min(topk, len(class_names)))
        return PredictionResult([(class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)])

    # ------------------------------------------------------------------ eval
    def evaluator(self, recipe: Recipe, info: DataInfo) -> Evaluator:
        return ClassificationEvaluator(info.class_names, recipe.eval.topk)

    def combine_outputs(self, outputs: Sequence[Any], weights: Any) -> Any:
        """``log(sum_i w_i softmax(z_i))``: log-probabilities are valid logits (softmax gives
        the averaged probabilities back, argmax the ensemble's class), computed stably."""
        import torch
        import torch.nn.functional as F

        w = weights if isinstance(weights, torch.Tensor) else torch.as_tensor(list(weights), dtype=torch.float32)
        log_w = torch.log(w.to(device=outputs[0].device, dtype=torch.float32))
        log_probs = torch.stack([F.log_softmax(z.float(), dim=1) for z in outputs])
        return torch.logsumexp(log_probs + log_w.view(-1, 1, 1), dim=0)

    def plots(self, metrics: dict[str, Any], info: DataInfo, out_dir: Path) -> list[Path]:
        from visiontl.runs.plots import plot_confusion_matrix

        cm = metrics.get("confusion_matrix")
        if cm is None:
            return []
        return [plot_confusion_matrix(cm, info.class_names, out_dir / "confusion_matrix.png")]

    def report_lines(self, metrics: dict[str, Any], info: DataInfo) -> list[str]:
        lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        for name, row in metrics.get("per_class", {}).items():
            lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |")
        return lines


def tasks() -> list[TaskAdapter]:
    """The adapters this module contributes (see ``visiontl.core_plugin.BUILTIN_TASKS``)."""
    return [ClassificationTask()]
