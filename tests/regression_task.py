"""A task the core has never heard of, defined only here: counting the squares in an image.

An image-level regression, as a third party would write it from the plugin guide: a CSV of
``path,count``, one output per image (``output = IMAGE_VECTOR``, K = 1), mean squared error,
and the mean absolute error (lower is better) deciding the best epoch. The tests register it
through a plugin manager they build (:func:`plugins_with_task`) and train it over the
built-in families' models, with no code for it in any family.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from visiontl import hookimpl
from visiontl.contracts import IMAGE_VECTOR, PluginInfo
from visiontl.errors import ConfigError, DataError
from visiontl.tasks.base import Batch, DataInfo, Evaluator, PredictionResult, TaskAdapter

NAME = "square_count"


def make_counting_data(root: Path, train: int = 16, val: int = 8, size: int = 32, seed: int = 0) -> Path:
    """``root/{train,val}.csv`` (``path,count``) over images with 0-3 white squares on black."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    side = max(4, size // 5)
    for split, n in (("train", train), ("val", val)):
        rows = []
        for i in range(n):
            count = i % 4
            image = Image.new("RGB", (size, size))
            draw = ImageDraw.Draw(image)
            cells = rng.sample([(x, y) for x in range(2) for y in range(2)], count)
            for cx, cy in cells:  # one square per quadrant: they never overlap
                x0 = cx * size // 2 + rng.randint(1, size // 2 - side - 1)
                y0 = cy * size // 2 + rng.randint(1, size // 2 - side - 1)
                draw.rectangle([x0, y0, x0 + side, y0 + side], fill=(255, 255, 255))
            path = root / "images" / f"{split}_{i:03d}.png"
            image.save(path)
            rows.append((path.name, count))
        with (root / f"{split}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "count"])
            writer.writerows([(f"images/{p}", c) for p, c in rows])
    return root


class CountingDataset:
    """``(image tensor, target [1], index, path)`` per row."""

    def __init__(self, rows: list[tuple[Path, float]], transform: Callable[[Any], Any]) -> None:
        self.rows = rows
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Any:
        import torch
        from PIL import Image

        path, value = self.rows[index]
        image = Image.open(path).convert("RGB")
        return self.transform(image), torch.tensor([value], dtype=torch.float32), index, str(path)


class CountingEvaluator(Evaluator):
    def __init__(self) -> None:
        self.preds: list[Any] = []
        self.targets: list[Any] = []

    def update(self, outputs: Any, targets: Any) -> None:
        self.preds.append(outputs.detach().float().cpu())
        self.targets.append(targets.detach().float().cpu())

    def compute(self) -> dict[str, Any]:
        import torch

        if not self.preds:
            raise DataError("no validation predictions")
        pred, target = torch.cat(self.preds), torch.cat(self.targets)
        err = pred - target
        return {
            "mae": float(err.abs().mean()),
            "rmse": float(err.pow(2).mean().sqrt()),
            "val_loss": float(err.pow(2).mean()),
            "within_half": float((err.abs() < 0.5).float().mean()),
        }


class CountingTask(TaskAdapter):
    """How many squares: one number per image, mean absolute error decides."""

    name = NAME
    formats = ("csv",)
    primary_metric = "mae"
    higher_is_better = False
    output = IMAGE_VECTOR
    label_kind = "targets"
    report_heading = "Errors (final epoch)"
    metric_names = ("mae", "rmse", "within_half", "val_loss")
    lower_is_better_metrics = ("mae", "rmse", "val_loss")

    def _rows(self, csv_path: Path) -> list[tuple[Path, float]]:
        with csv_path.open(newline="") as f:
            return [(csv_path.parent / r["path"], float(r["count"])) for r in csv.DictReader(f)]

    def inspect(self, recipe: Any, data_root: Path) -> DataInfo:
        from visiontl.data.paths import resolve_data_path

        if recipe.data.format not in self.formats:
            raise ConfigError(f"data.format '{recipe.data.format}' is not a {NAME} format.", fix="use data.format: csv")
        root = resolve_data_path(recipe.data.root, data_root)
        train, val = self._rows(root / recipe.data.train), self._rows(root / (recipe.data.val or "val.csv"))
        return DataInfo(
            class_names=["count"],
            counts={"train": {"count": len(train)}, "val": {"count": len(val)}},
            extras={"train": train, "val": val},
        )

    def datasets(self, recipe: Any, info: DataInfo, preprocessing: Any, data_root: Path) -> tuple[Any, Any]:
        from visiontl.data.transforms import eval_transform

        transform = eval_transform(preprocessing.with_size(recipe.data.image_size))
        return CountingDataset(info.extras["train"], transform), CountingDataset(info.extras["val"], transform)

    def deterministic_train_transform(self, recipe: Any) -> bool:
        return True

    def collate(self, items: Sequence[Any]) -> Batch:
        import torch

        return Batch(torch.stack([it[0] for it in items]), torch.stack([it[1] for it in items]), [it[2] for it in items], [it[3] for it in items])

    def loss_function(self, recipe: Any, info: DataInfo) -> Callable[[Any, Any], Any]:
        import torch.nn.functional as F

        return lambda outputs, targets: F.mse_loss(outputs.float(), targets.float())

    def evaluator(self, recipe: Any, info: DataInfo) -> Evaluator:
        return CountingEvaluator()

    def combine_outputs(self, outputs: Sequence[Any], weights: Any) -> Any:
        return sum(w * o.float() for w, o in zip(weights, outputs, strict=True))

    def predict(self, model: Any, image: Any, preprocessing: Any, class_names: Sequence[str], *, topk: int = 5,
                score_threshold: float = 0.5, recipe: Any = None) -> PredictionResult:
        import torch

        from visiontl.data.transforms import eval_transform

        with torch.no_grad():
            value = float(model(eval_transform(preprocessing)(image).unsqueeze(0)).float()[0, 0])
        return PredictionResult([("count", value)])

    def example_batch(self, num_classes: int, input_size: tuple[int, int], batch_size: int = 2) -> Batch:
        import torch

        g = torch.Generator().manual_seed(0)
        inputs = torch.rand(batch_size, 3, *input_size, generator=g)
        targets = torch.arange(batch_size * num_classes, dtype=torch.float32).view(batch_size, num_classes)
        return Batch(inputs, targets, list(range(batch_size)), [f"example{i}" for i in range(batch_size)])

    def check_outputs(self, outputs: Any, num_classes: int, batch: Batch) -> None:
        assert tuple(outputs.shape) == (len(batch), num_classes), f"{NAME} outputs should be (batch, {num_classes}), got {tuple(outputs.shape)}"

    def report_lines(self, metrics: dict[str, Any], info: DataInfo) -> list[str]:
        return [f"MAE {metrics['mae']:.3f}, RMSE {metrics['rmse']:.3f}, within 0.5: {metrics['within_half']:.0%}"]


class CountingPlugin:
    """The plugin that contributes the task (an object: it lives in a test module)."""

    @hookimpl
    def visiontl_plugin_info(self) -> PluginInfo:
        return PluginInfo(name="counting", families=(), tasks=(NAME,), description="test-only counting task")

    @hookimpl
    def visiontl_tasks(self) -> list[TaskAdapter]:
        return [CountingTask()]


def plugins_with_task() -> Any:
    """The installed plugins (timm, torchvision ...) plus the counting task."""
    from visiontl.plugin_manager import build_plugin_manager

    return build_plugin_manager([("counting", CountingPlugin())], disabled=())
