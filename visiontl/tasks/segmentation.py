"""The semantic segmentation task: image and mask folders, CE/Dice/Focal losses, mIoU.

Dataset items are a normalised image ``[3, H, W]`` and an ``int64`` mask ``[H, W]`` whose
ignored pixels hold ``data.ignore_index``; models return logits ``[B, C, h, w]`` (a mapping
``{"out", "aux"}`` in training for models with an auxiliary classifier), resized to the labels'
size when they differ. Validation counts the masks' own pixels: the image is resized to the
input size (``eval.inference: resize``) or kept at its size and covered by sliding windows
(``sliding``), and the logits are resized back to the mask. See docs/segmentation.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visiontl.contracts import DENSE_MAP
from visiontl.data.classification import Unreadable
from visiontl.data.segmentation.dataset import SegItem
from visiontl.errors import ConfigError, DataError
from visiontl.ids import suggest
from visiontl.tasks.base import Batch, DataInfo, Evaluator, PredictionResult, TaskAdapter
from visiontl.tasks.selection import FigureRule, SelectionMetric

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from visiontl.config.schema import Recipe
    from visiontl.contracts import Preprocessing

#: ``eval.inference: auto`` picks sliding windows when a side is more than this many times
#: the input size, else resize.
AUTO_SLIDING_RATIO = 2.0


@dataclass
class SlidingInputs:
    """Evaluation inputs at the images' own sizes, to be covered by sliding windows."""

    images: list[Any]
    window: tuple[int, int]
    overlap: float


@dataclass
class LetterboxInputs:
    """Evaluation inputs letterboxed to the input size (``data.resize: letterbox``) whose masks
    are at the images' own sizes: each output's padding is cropped before it is compared."""

    images: Any


@dataclass
class SegmentationPrediction(PredictionResult):
    """A prediction with the label map itself (kept out of the JSON-serialisable ``details``).

    Attributes:
        mask: predicted class indices ``[H, W]`` at the image's size.
    """

    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64), repr=False)


def _per_image(outputs: Any, targets: Any) -> list[tuple[Any, Any]]:
    """(logits ``[C, H, W]``, labels ``[H, W]``) per image, logits resized to the labels."""
    import torch.nn.functional as F

    items = list(outputs) if isinstance(outputs, (list, tuple)) else list(outputs.unbind(0))
    labels = list(targets) if isinstance(targets, (list, tuple)) else list(targets.unbind(0))
    out = []
    for lg, t in zip(items, labels, strict=True):
        if tuple(lg.shape[-2:]) != tuple(t.shape[-2:]):
            lg = F.interpolate(lg.unsqueeze(0).float(), size=tuple(t.shape[-2:]), mode="bilinear", align_corners=False)[0]
        out.append((lg, t))
    return out


class SegmentationEvaluator(Evaluator):
    """Accumulates a pixel confusion matrix (and the pixel cross-entropy) over a dataset.

    Args:
        class_names: the ``C`` class names.
        ignore_index: label value left out of every count.
    """

    def __init__(self, class_names: Sequence[str], ignore_index: int = 255) -> None:
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        c = len(self.class_names)
        self.cm = np.zeros((c, c), dtype=np.int64)
        self.loss_sum = 0.0
        self.loss_pixels = 0
        self.images = 0

    def update(self, outputs: Any, targets: Any) -> None:
        import torch
        import torch.nn.functional as F

        c = len(self.class_names)
        for lg, t in _per_image(outputs, targets):
            lg = lg.detach().float()
            t = t.detach().to(lg.device)
            valid = t != self.ignore_index
            labels = t[valid]
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= c):
                raise DataError(f"Labels outside 0..{c - 1} reached the evaluator (ignore_index is {self.ignore_index}).")
            pred = lg.argmax(0)[valid]
            self.cm += torch.bincount(labels * c + pred, minlength=c * c).reshape(c, c).cpu().numpy()
            if labels.numel():
                self.loss_sum += float(F.cross_entropy(lg.unsqueeze(0), t.unsqueeze(0), ignore_index=self.ignore_index, reduction="sum"))
                self.loss_pixels += int(labels.numel())
            self.images += 1

    def compute(self) -> dict[str, Any]:
        from visiontl.metrics.segmentation import segmentation_metrics

        if not self.images:
            raise DataError("The validation set produced no predictions (every image was unreadable?).")
        metrics = segmentation_metrics(self.cm, self.class_names)
        metrics["val_loss"] = self.loss_sum / self.loss_pixels if self.loss_pixels else float("nan")
        metrics["num_images"] = self.images
        return metrics


class SegmentationTask(TaskAdapter):
    """Semantic segmentation (one class per pixel)."""

    name = "segmentation"
    formats = ("masks",)
    primary_metric = "miou"
    higher_is_better = True
    output = DENSE_MAP
    report_heading = "Per class (final epoch)"
    #: What ``eval.metric`` may name (``iou_<class>``: per class, up to MAX_SCALAR_CLASSES classes).
    metric_names = ("miou", "mean_dice", "pixel_accuracy", "mean_accuracy", "fw_iou", "iou_<class>", "val_loss")

    def selection_metric(self) -> SelectionMetric:
        """Published mIoU exists for few models, on different datasets; every card has its
        encoder's ImageNet top-1 (of the weights it really loads), a common if rough proxy."""
        return SelectionMetric(
            "encoder ImageNet top-1 (proxy)",
            (FigureRule("encoder_top1", "imagenet", "encoder ImageNet top-1 (proxy)"), FigureRule("miou", "", "mIoU")),
            proxy=True,
        )

    # ------------------------------------------------------------------ data
    def inspect(self, recipe: Recipe, data_root: Path) -> DataInfo:
        from visiontl.data.segmentation.classes import summary
        from visiontl.data.segmentation.scan import scan_dataset

        data = recipe.data
        if data.format not in self.formats:
            close = suggest(data.format, self.formats, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"data.format '{data.format}' is not a segmentation format.{hint}",
                fix="use data.format: masks (image and mask folders matched by file stem)",
            )
        scan = scan_dataset(data, data_root)
        # counts: images per split (each image labels many classes; pixels are in extras).
        counts = {"train": {"images": len(scan.train)}, "val": {"images": len(scan.val)}}
        if data.test:
            counts["test"] = {"images": len(scan.test)}
        return DataInfo(
            class_names=scan.class_names,
            counts=counts,
            skipped=dict(scan.skipped),
            extras={"scan": scan, "pixels": scan.pixels, **summary(scan.spec, scan.class_names)},
            provenance=scan.provenance,
        )

    def inspect_test(self, recipe: Recipe, data_root: Path, class_names: Sequence[str]) -> DataInfo:
        """Only ``data.test`` with ``data.test_masks``, decoded with the recipe's class settings."""
        from visiontl.data.segmentation.classes import summary
        from visiontl.data.segmentation.scan import scan_test

        scan = scan_test(recipe.data, data_root, class_names)
        return DataInfo(
            class_names=list(class_names),
            counts={"test": {"images": len(scan.test)}},
            skipped=dict(scan.skipped),
            extras={"scan": scan, "pixels": scan.pixels, **summary(scan.spec, scan.class_names)},
            provenance=scan.provenance,
        )

    def explicit_split(self, recipe: Recipe, images: Path, labels: Path | None) -> dict[str, Any]:
        """``--images DIR --masks DIR``: the masks format's test folders."""
        if labels is None or not labels.is_dir():
            raise ConfigError(
                "Scoring a segmentation model on explicit folders needs the masks folder as well as the images.",
                fix="visiontl eval RUN --images DIR --masks DIR (masks matched to images by file stem)",
            )
        return {"format": "masks", "test": str(images), "test_masks": str(labels)}

    def resolved_preset(self, recipe: Recipe, info: DataInfo) -> str:
        """The augmentation preset, with ``auto`` resolved from the training images."""
        from visiontl.data.segmentation.transforms import auto_preset

        preset = recipe.augmentation.preset
        return auto_preset(info.total("train")) if preset == "auto" else preset

    def datasets(self, recipe: Recipe, info: DataInfo, preprocessing: Preprocessing, data_root: Path) -> tuple[Any, Any]:
        from visiontl.data.segmentation.dataset import SegmentationDataset
        from visiontl.data.segmentation.transforms import train_transform

        if recipe.augmentation.mixup or recipe.augmentation.cutmix:
            raise ConfigError("augmentation.mixup/cutmix are classification augmentations.", fix="set them to 0 for segmentation")
        scan = info.extras["scan"]
        pre = preprocessing.with_size(recipe.data.image_size)
        ignore = recipe.data.ignore_index
        preset = self.resolved_preset(recipe, info)
        train = SegmentationDataset(scan.train, scan.decoder, train_transform(pre, preset, ignore, recipe.data.resize))
        return train, self._eval_set(recipe, scan.val, scan.decoder, pre)

    def eval_dataset(self, recipe: Recipe, info: DataInfo, preprocessing: Preprocessing, data_root: Path, split: str = "val") -> Any:
        """The validation or test pairs with the validation transform."""
        if split not in ("val", "test"):
            raise ConfigError(f"Segmentation has no '{split}' split.", fix="use val or test")
        scan = info.extras["scan"]
        return self._eval_set(recipe, getattr(scan, split), scan.decoder, preprocessing.with_size(recipe.data.image_size))

    def _eval_set(self, recipe: Recipe, pairs: Sequence[Any], decoder: Any, pre: Preprocessing) -> Any:
        """Pairs for scoring: images resized (stretched or letterboxed) or at their own size
        for sliding windows; masks always at their own size."""
        from visiontl.data.segmentation.dataset import SegmentationDataset
        from visiontl.data.segmentation.transforms import eval_transform, resize_mode

        sliding = recipe.eval.inference == "sliding"
        mode = resize_mode(recipe.data.resize)
        return SegmentationDataset(
            pairs,
            decoder,
            eval_transform(pre, resize=not sliding, mode=mode),
            window=pre.input_size if sliding else None,
            overlap=recipe.eval.window_overlap,
            letterboxed=mode == "letterbox" and not sliding,
        )

    def deterministic_train_transform(self, recipe: Recipe) -> bool:
        return recipe.augmentation.preset == "none"

    def collate(self, items: Sequence[Any]) -> Batch:
        import torch

        good = [it for it in items if isinstance(it, SegItem)]
        skipped = {it.path: it.reason for it in items if isinstance(it, Unreadable)}
        if not good:
            return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), [], [], skipped)

        def stack(tensors: list[Any]) -> Any:
            return torch.stack(tensors) if len({tuple(t.shape) for t in tensors}) == 1 else tensors

        images = [it.image for it in good]
        inputs: Any = SlidingInputs(images, good[0].window, good[0].overlap) if good[0].window else stack(images)
        if good[0].letterboxed:
            inputs = LetterboxInputs(inputs)
        return Batch(inputs, stack([it.mask for it in good]), [it.index for it in good], [it.path for it in good], skipped)

    def move_batch(self, batch: Batch, device: torch.device, channels_last: bool = False) -> Batch:
        import torch

        def move(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                x = x.to(device, non_blocking=True)
                if channels_last and x.ndim == 4 and x.is_floating_point():
                    x = x.contiguous(memory_format=torch.channels_last)
                return x
            if isinstance(x, SlidingInputs):
                return SlidingInputs([move(i) for i in x.images], x.window, x.overlap)
            if isinstance(x, LetterboxInputs):
                return LetterboxInputs(move(x.images))
            if isinstance(x, list):
                return [move(i) for i in x]
            return x

        return Batch(move(batch.inputs), move(batch.targets), batch.indices, batch.paths, batch.skipped)

    # ------------------------------------------------------------------ model io
    def loss_function(self, recipe: Recipe, info: DataInfo) -> Callable[[Any, Any], torch.Tensor]:
        import torch

        from visiontl.losses.segmentation import SegmentationLoss, loss_terms

        terms = loss_terms(recipe.loss.name, recipe.loss.terms)
        cw = recipe.loss.class_weights
        weight = None
        if cw == "balanced":
            pixels = info.extras.get("pixels", {}).get("train")
            if not pixels:
                raise ConfigError("loss.class_weights 'balanced' needs the training pixel counts of a scanned dataset.")
            counts = torch.tensor(pixels, dtype=torch.float32)
            present = counts > 0
            # Inverse pixel frequency, 1.0 on average over the classes present in train.
            weight = torch.ones_like(counts)
            weight[present] = counts[present].sum() / (present.sum() * counts[present])
        elif cw is not None:
            if len(cw) != info.num_classes:
                raise ConfigError(f"loss.class_weights has {len(cw)} values for {info.num_classes} classes.")
            weight = torch.tensor(cw, dtype=torch.float32)
        return SegmentationLoss(
            terms,
            ignore_index=recipe.data.ignore_index,
            class_weights=weight,
            label_smoothing=recipe.loss.label_smoothing,
            focal_gamma=recipe.loss.focal_gamma,
        )

    def forward_train(self, model: nn.Module, batch: Batch, loss: Callable[[Any, Any], torch.Tensor]) -> tuple[torch.Tensor, Any]:
        import torch

        from visiontl.data.segmentation.inference import padded_forward

        inputs, targets = batch.inputs, batch.targets
        if isinstance(inputs, torch.Tensor) and inputs.shape[0] == 1 and model.training:
            # A last batch of one image: image-pooling branches (ASPP, PSP) normalise a 1x1
            # map, which BatchNorm cannot do for one sample. Two copies give the same loss,
            # gradient and batch statistics as the single image.
            inputs = torch.cat([inputs, inputs])
            targets = torch.cat([targets, targets]) if isinstance(targets, torch.Tensor) else [*targets, *targets]
        outputs = padded_forward(model, inputs)
        return loss(outputs, targets), outputs

    def forward_eval(self, model: nn.Module, batch: Batch) -> Any:
        import torch.nn.functional as F

        from visiontl.data.segmentation.inference import back_to_image, logits, sliding_logits

        inputs, targets = batch.inputs, batch.targets
        if isinstance(inputs, SlidingInputs):
            return [sliding_logits(model, img, inputs.window, inputs.overlap) for img in inputs.images]
        if isinstance(inputs, LetterboxInputs):
            # Each image's content is at the top left of its letterbox: crop, then resize to its mask.
            out = logits(model, inputs.images)
            labels = list(targets) if isinstance(targets, list) else list(targets.unbind(0))
            return [back_to_image(o, tuple(t.shape[-2:]), "letterbox") for o, t in zip(out, labels, strict=True)]
        if isinstance(inputs, list):
            return [logits(model, img.unsqueeze(0))[0] for img in inputs]
        out = logits(model, inputs)
        if isinstance(targets, list):
            return [F.interpolate(o.unsqueeze(0), size=tuple(t.shape[-2:]), mode="bilinear", align_corners=False)[0] for o, t in zip(out, targets, strict=True)]
        if tuple(out.shape[-2:]) != tuple(targets.shape[-2:]):
            out = F.interpolate(out, size=tuple(targets.shape[-2:]), mode="bilinear", align_corners=False)
        return out

    def evaluator(self, recipe: Recipe, info: DataInfo) -> Evaluator:
        return SegmentationEvaluator(info.class_names, recipe.data.ignore_index)

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
        inference: str | None = None,
        overlap: float | None = None,
    ) -> SegmentationPrediction:
        """Predict one RGB PIL image at its own size.

        Args:
            recipe: the trained run's recipe: ``eval.inference`` and ``eval.window_overlap``
                are used unless ``inference``/``overlap`` are given.
            inference: ``resize`` or ``sliding``; ``None``/``auto`` picks sliding windows when a
                side of the image exceeds :data:`AUTO_SLIDING_RATIO` times the input size.
            overlap: sliding-window overlap.

        Returns:
            Classes present, largest area first, as ``(name, fraction of the image's pixels)``
            (``score`` is ``area``); details with the areas, the image size and the inference
            used; the label map in ``mask``. ``data.resize: letterbox`` in the recipe letterboxes
            the image as in training.
        """
        import torch

        from visiontl.data.segmentation.inference import resize_logits, sliding_logits
        from visiontl.data.segmentation.transforms import image_transform, resize_mode

        if recipe is not None:
            inference = inference or recipe.eval.inference
            overlap = recipe.eval.window_overlap if overlap is None else overlap
        overlap = 0.25 if overlap is None else overlap
        width, height = image.size
        h, w = preprocessing.input_size
        if inference in (None, "auto"):
            inference = "sliding" if max(height / h, width / w) > AUTO_SLIDING_RATIO else "resize"
        mode = inference
        if mode not in ("resize", "sliding"):
            raise ConfigError(f"Unknown segmentation inference '{mode}'.", fix="use resize or sliding")
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        geometry = resize_mode(recipe.data.resize) if recipe is not None else "stretch"
        with torch.no_grad():
            if mode == "resize":
                x = image_transform(preprocessing, resize=True, mode=geometry)(image).to(device)
                lg = resize_logits(model, x, (height, width), geometry)
            else:
                x = image_transform(preprocessing, resize=False)(image).to(device)
                lg = sliding_logits(model, x, (h, w), overlap)
        labels = lg.argmax(0).cpu().numpy()
        fractions = np.bincount(labels.reshape(-1), minlength=len(class_names)) / labels.size
        order = [int(i) for i in np.argsort(-fractions, kind="stable") if fractions[i] > 0]
        areas = {class_names[i]: float(fractions[i]) for i in order}
        return SegmentationPrediction(
            labels=[(class_names[i], float(fractions[i])) for i in order],
            details={"areas": areas, "size": [height, width], "inference": mode},
            score="area",
            mask=labels,
        )

    def draw(self, image: Any, result: PredictionResult, class_names: Sequence[str]) -> Any | None:
        from visiontl.data.segmentation.overlay import overlay

        if not isinstance(result, SegmentationPrediction) or result.mask.size == 0:
            return None
        return overlay(image, result.mask, class_names)

    # ------------------------------------------------------------------ contract kit
    def example_batch(self, num_classes: int, input_size: tuple[int, int], batch_size: int = 2) -> Batch:
        import torch

        g = torch.Generator().manual_seed(0)
        inputs = torch.randn(batch_size, 3, *input_size, generator=g)
        targets = torch.randint(0, num_classes, (batch_size, *input_size), generator=g)
        targets[:, :4, :4] = 255  # a few ignored pixels, as real masks have
        return Batch(inputs, targets, list(range(batch_size)), [f"example{i}" for i in range(batch_size)])

    def check_outputs(self, outputs: Any, num_classes: int, batch: Batch) -> None:
        import torch

        assert isinstance(outputs, torch.Tensor), f"segmentation eval outputs should be a logits tensor, got {type(outputs).__name__}"
        expected = (len(batch), num_classes, *batch.targets.shape[-2:])
        assert tuple(outputs.shape) == expected, f"segmentation logits should be (batch, classes, H, W) = {expected}, got {tuple(outputs.shape)}"
        assert bool(torch.isfinite(outputs).all()), "segmentation logits are not finite"

    # ------------------------------------------------------------------ reports
    def plots(self, metrics: dict[str, Any], info: DataInfo, out_dir: Path) -> list[Path]:
        cm = metrics.get("confusion_matrix")
        if cm is None:
            return []
        return [_plot_confusion(np.asarray(cm), info.class_names, out_dir / "confusion_matrix.png")]

    def report_lines(self, metrics: dict[str, Any], info: DataInfo) -> list[str]:
        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"

        lines = ["| class | IoU | Dice | precision | recall | pixels |", "|---|---:|---:|---:|---:|---:|"]
        for name, row in metrics.get("per_class", {}).items():
            lines.append(f"| {name} | {fmt(row['iou'])} | {fmt(row['dice'])} | {fmt(row['precision'])} | {fmt(row['recall'])} | {row['pixels']:,} |")
        if "miou" in metrics:
            lines += ["", f"mIoU {metrics['miou']:.4f}, pixel accuracy {metrics['pixel_accuracy']:.4f}, mean Dice {metrics['mean_dice']:.4f}; "
                      f"classes from {info.extras.get('classes_from', '?')}; IoU is '-' for a class neither labelled nor predicted in the scored images."]
        return lines


def _plot_confusion(cm: np.ndarray, names: Sequence[str], out: Path) -> Path:
    """Row-normalised pixel confusion matrix (each row: where a class's pixels went)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=np.float64), where=rows > 0)
    n = len(names)
    size = max(3.5, min(14.0, 0.35 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fontsize = 8 if n <= 30 else 4
    ax.set_xticks(range(n), labels=list(names), rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), labels=list(names), fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (row-normalised pixels)")
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def tasks() -> list[TaskAdapter]:
    """The adapters this module contributes (see ``visiontl.core_plugin.BUILTIN_TASKS``)."""
    return [SegmentationTask()]
