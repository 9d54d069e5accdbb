"""The classification task: ImageFolder/CSV data, cross-entropy, accuracy and friends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.contracts import IMAGE_VECTOR
from visiontl.data.classification import (
    ImageClassificationDataset,
    Sample,
    SampleList,
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
    def _check_format(self, recipe: Recipe) -> None:
        data = recipe.data
        if data.format not in self.formats:
            close = suggest(data.format, self.formats, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"data.format '{data.format}' is not a classification format.{hint}",
                fix=f"use one of: {', '.join(self.formats)}",
            )

    def _scan_split(self, recipe: Recipe, data_root: Path, root: Path, where: str, names: Sequence[str]) -> SampleList:
        """One more split (test) in the recipe's format, with the training classes."""
        data = recipe.data
        if data.format == "imagefolder":
            return scan_imagefolder(root / where, names)[1]
        image_root = resolve_data_path(data.image_root, data_root, what="data.image_root") if data.image_root else None
        return scan_csv(root / where, image_root, names)[1]

    def _scan(self, recipe: Recipe, data_root: Path) -> tuple[list[str], list[Sample], list[Sample], dict[str, str], str]:
        """(classes, train, val, skipped, how validation was carved from train or "")."""
        data = recipe.data
        self._check_format(recipe)
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
        carved = ""
        if val is not None:
            skipped.update(val.skipped)
            val_samples = val.samples
        else:
            pool = len(train_samples)
            if data.val_last is not None:
                train_samples, val_samples = hold_out_last(train_samples, data.val_last)
                carved = f"the last {len(val_samples)} of {pool} training images by file name (data.val_last: {data.val_last})"
            elif data.val_split is not None:
                train_samples, val_samples = stratified_split(train_samples, data.val_split, data.split_seed)
                carved = (f"a seeded {len(val_samples)} of {pool} training images, stratified by class "
                                f"(data.val_split: {data.val_split}, split_seed: {data.split_seed})")
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
        return names, train_samples, val_samples, skipped, carved

    def inspect(self, recipe: Recipe, data_root: Path) -> DataInfo:
        names, train, val, skipped, carved = self._scan(recipe, data_root)
        if len(names) < 2:
            raise DataError(f"Classification needs at least 2 classes; found {names}.")
        splits = {"train": train, "val": val}
        data = recipe.data
        if data.test:
            root = resolve_data_path(data.root, data_root)
            found = self._scan_split(recipe, data_root, root, data.test, names)
            skipped.update(found.skipped)
            splits["test"] = limit_per_class(found.samples, data.limit)
            if not splits["test"]:
                raise DataError(f"No usable test images in '{root / data.test}'.", fix="check data.test")
        return self._info(names, splits, skipped, data_root, self._labels(recipe, data_root), {"val": carved} if carved else {})

    def inspect_test(self, recipe: Recipe, data_root: Path, class_names: Sequence[str]) -> DataInfo:
        """Only ``data.test`` (a class-folder parent, or a CSV), with the model's classes."""
        self._check_format(recipe)
        data = recipe.data
        if not data.test:
            raise ConfigError("No test split to score: data.test is not set.",
                              fix="set data.test, or use: visiontl eval RUN --images DIR [--labels CSV]")
        root = resolve_data_path(data.root, data_root, must_exist=False)
        found = self._scan_split(recipe, data_root, root, data.test, class_names)
        samples = limit_per_class(found.samples, data.limit)
        if not samples:
            raise DataError(f"No usable test images in '{root / data.test}' ({len(found.skipped)} file(s) skipped).", fix="check the folder layout <split>/<class>/<image>, or the CSV")
        return self._info(list(class_names), {"test": samples}, dict(found.skipped), data_root, self._labels(recipe, data_root), {})

    def _labels(self, recipe: Recipe, data_root: Path) -> dict[str, Path]:
        """Where the labels of each split are: the CSV files (the folders say it for imagefolder)."""
        data = recipe.data
        if data.format != "csv":
            return {}
        root = resolve_data_path(data.root, data_root, must_exist=False)
        named = {"train": data.train, "val": data.val or data.train, "test": data.test}
        return {split: root / where for split, where in named.items() if where}

    def _info(self, names: list[str], splits: dict[str, list[Sample]], skipped: dict[str, str], data_root: Path,
              labels: dict[str, Path], carved: dict[str, str]) -> DataInfo:
        return DataInfo(
            class_names=names,
            counts={split: count_per_class(samples, names) for split, samples in splits.items()},
            skipped=skipped,
            extras={f"{split}_samples": samples for split, samples in splits.items()},
            provenance=provenance(data_root, {split: [s.path for s in samples] for split, samples in splits.items()},
                                  labels={k: v for k, v in labels.items() if k in splits}, carved=carved),
        )

    def explicit_split(self, recipe: Recipe, images: Path, labels: Path | None) -> dict[str, Any]:
        """``--images DIR``: an ImageFolder-style folder (``DIR/<class>/<image>``); with
        ``--labels CSV``: a path,label CSV whose paths are relative to DIR."""
        if labels is None:
            return {"format": "imagefolder", "test": str(images)}
        if labels.suffix.lower() != ".csv" or not labels.is_file():
            raise ConfigError(f"--labels '{labels}' is not a CSV file: classification scores a path,label CSV.",
                              fix="visiontl eval RUN --images DIR --labels labels.csv (or --images DIR/<class>/<image> alone)")
        return {"format": "csv", "test": str(labels), "image_root": str(images)}

    def datasets(self, recipe: Recipe, info: DataInfo, preprocessing: Preprocessing, data_root: Path) -> tuple[Any, Any]:
        from visiontl.data.transforms import train_transform

        pre = preprocessing.with_size(recipe.data.image_size)
        preset = self.resolved_preset(recipe, info)
        train = ImageClassificationDataset(info.extras["train_samples"], train_transform(pre, preset, recipe.data.resize))
        return train, self.eval_dataset(recipe, info, preprocessing, data_root)

    def eval_dataset(self, recipe: Recipe, info: DataInfo, preprocessing: Preprocessing, data_root: Path, split: str = "val") -> Any:
        """The validation or test samples with the evaluation transform."""
        from visiontl.data.transforms import eval_transform

        samples = info.extras.get(f"{split}_samples")
        if split not in ("val", "test") or samples is None:
            raise ConfigError(f"There is no '{split}' split to score here.", fix="set data.test for a test split")
        return ImageClassificationDataset(samples, eval_transform(preprocessing.with_size(recipe.data.image_size), recipe.data.resize))

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

        x = eval_transform(preprocessing, recipe.data.resize if recipe is not None else "auto")(image).unsqueeze(0)
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
