"""Real images for verification and int8 calibration.

* Verification runs the recipe's validation set, through the task's own datasets, collate and
  ``forward_eval``, exactly as ``visiontl eval`` does.
* Calibration uses the run's training images with the evaluation transform (no augmentation:
  calibration should see what inference sees), spread evenly over the set so every class is
  represented; or, with ``--calib DATA``, any folder of images under the model's preprocessing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from visiontl.config.schema import Recipe
from visiontl.contracts import Preprocessing
from visiontl.errors import DataError
from visiontl.tasks.base import Batch, TaskAdapter

#: Calibration images used for int8 by default (NNCF's own default subset is 300).
CALIBRATION_IMAGES = 100


def val_dataset(recipe: Recipe, task: TaskAdapter, preprocessing: Preprocessing, data_root: Path) -> tuple[Any, Any]:
    """``(info, val dataset)`` of ``recipe``, built by the task."""
    info = task.inspect(recipe, data_root)
    _, val = task.datasets(recipe, info, preprocessing, data_root)
    return info, val


def batches(dataset: Any, task: TaskAdapter, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
    """Collated batches of ``dataset`` (the first ``limit`` items when given), in order."""
    from torch.utils.data import DataLoader, Subset

    if limit is not None and limit < len(dataset):
        dataset = Subset(dataset, range(limit))
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=task.collate, num_workers=0)
    for batch in loader:
        if len(batch):
            yield batch


def _spread(n_items: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(n_items)`` (class-sorted data gets every class)."""
    if n_items <= count:
        return list(range(n_items))
    step = n_items / count
    return sorted({int(i * step) for i in range(count)})


def _as_arrays(inputs: Any) -> list[np.ndarray]:
    import torch

    if isinstance(inputs, torch.Tensor):
        return [inputs[i : i + 1].float().contiguous().numpy() for i in range(inputs.shape[0])]
    if isinstance(inputs, (list, tuple)):
        return [t.unsqueeze(0).float().contiguous().numpy() for t in inputs if isinstance(t, torch.Tensor)]
    return []


def calibration_from_run(recipe: Recipe, task: TaskAdapter, preprocessing: Preprocessing, data_root: Path,
                         count: int = CALIBRATION_IMAGES) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Up to ``count`` training images of ``recipe`` as float32 ``[1, 3, H, W]`` batches.

    Returns:
        The batches and a description for the manifest.
    """
    plain = recipe.model_copy(update={"augmentation": recipe.augmentation.model_copy(update={"preset": "none", "mixup": 0.0, "cutmix": 0.0})})
    info = task.inspect(plain, data_root)
    train, _ = task.datasets(plain, info, preprocessing, data_root)
    arrays: list[np.ndarray] = []
    for index in _spread(len(train), count):
        batch = task.collate([train[index]])
        if len(batch):
            arrays += _as_arrays(batch.inputs)
    if not arrays:
        raise DataError(f"No readable training images of '{recipe.data.root}' to calibrate with.", fix="pass --calib DATA")
    return arrays, {"source": f"training images of the run ({recipe.data.root}, split {recipe.data.train})", "images": len(arrays),
                    "transform": "evaluation transform (no augmentation)"}


#: Tasks whose models take whole images in 0..1 at their own size and resize and normalise
#: inside (detectors): calibration images go in as they are.
RAW_IMAGE_TASKS = ("detection", "instance_segmentation")


def calibration_from_folder(folder: Path, preprocessing: Preprocessing, count: int = CALIBRATION_IMAGES,
                            raw: bool = False, resize: str = "auto") -> tuple[list[np.ndarray], dict[str, Any]]:
    """Up to ``count`` images found under ``folder`` (recursively), with the evaluation
    transform under the model's ``data.resize`` (what it sees at inference), or with ``raw``
    as RGB in 0..1 at their own size (what detectors take)."""
    from visiontl.data.images import UnreadableImage, is_image_file, load_rgb
    from visiontl.data.transforms import eval_transform

    if not folder.exists():
        raise DataError(f"Calibration folder '{folder}' does not exist.", fix="pass --calib a folder of images")
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
    transform = _to_unit_tensor if raw else eval_transform(preprocessing, resize)
    arrays: list[np.ndarray] = []
    skipped = 0
    for index in _spread(len(files), count):
        try:
            image = load_rgb(files[index])
        except UnreadableImage:
            skipped += 1
            continue
        arrays.append(transform(image).unsqueeze(0).float().contiguous().numpy())
    if not arrays:
        raise DataError(f"No readable images under '{folder}' to calibrate with ({len(files)} image file(s) found).",
                        fix="pass --calib a folder that holds .jpg/.png images")
    return arrays, {"source": str(folder), "images": len(arrays), "skipped": skipped,
                    "transform": "none (RGB in 0..1 at each image's size)" if raw else "evaluation transform"}


def _to_unit_tensor(image: Any) -> Any:
    import torch
    from torchvision.transforms.v2 import functional as F

    return F.to_dtype(F.pil_to_tensor(image), torch.float32, scale=True)
