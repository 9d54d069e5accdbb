"""``--write-recipe``: a runnable recipe for the chosen model and the advised strategy."""

from __future__ import annotations

from pathlib import Path

import yaml

from visiontl.errors import ConfigError
from visiontl.selection.engine import Selection

#: The data format written for the built-in tasks (kept for callers; any other task gets the
#: first format it declares, ``TaskAdapter.formats``).
DATA_FORMATS = {"classification": "imagefolder", "detection": "coco", "instance_segmentation": "coco", "segmentation": "masks"}


def data_format(task: str) -> str | None:
    """The ``data.format`` to write for ``task``: the first one the task reads."""
    if task in DATA_FORMATS:
        return DATA_FORMATS[task]
    from visiontl.tasks.registry import find_task

    adapter = find_task(task)
    return adapter.formats[0] if adapter is not None and adapter.formats else None


def recipe_for(selection: Selection, data: Path | None) -> dict:
    """The recipe dict (validated before it is written)."""
    best = selection.best
    if best is None:
        raise ConfigError("No candidate meets the constraints: there is no model to write a recipe for.")
    advice = selection.advice
    strategy: dict = {"name": advice.strategy}
    optimizer: dict = {"name": "adamw", "weight_decay": 0.05}
    if advice.strategy == "feature_extraction":
        epochs = 15
        optimizer["lr"] = 0.001
    elif advice.strategy == "progressive":
        epochs = 15
        strategy.update({"phase_epochs": [3, 4, 8], "unfreeze_last": 2})
        optimizer["lr"] = [0.00001, 0.001]
    else:
        epochs = 30
        optimizer["lr"] = [0.0001, 0.001]
    recipe: dict = {
        "task": selection.task,
        "data": {"root": str(data) if data is not None else "CHANGE_ME: your dataset folder"},
        "model": {"id": best.id, "pretrained": True},
        "strategy": strategy,
        "optimizer": optimizer,
        "scheduler": {"name": "cosine", "warmup_epochs": 1},
        "augmentation": {"preset": advice.augmentation},
        "train": {"epochs": epochs, "batch_size": 32},
    }
    fmt = data_format(selection.task)
    if fmt is not None:
        recipe["data"] = {"format": fmt, **recipe["data"]}
    for key, value in advice.regularisation.items():
        section, _, field = key.partition(".")
        recipe.setdefault(section, {})[field] = value
    return recipe


def write_recipe(selection: Selection, path: Path, data: Path | None) -> Path:
    """Write the recipe with a header saying where it came from and why."""
    from visiontl.config.loader import validate_recipe

    recipe = recipe_for(selection, data)
    validate_recipe(recipe, "(generated)")
    best = selection.best
    assert best is not None
    header = [
        f"# Written by: visiontl select --task {selection.task} --target {selection.target.name}",
        f"# Model: {best.id}: {best.reasons}",
        *(f"# {line}" for line in selection.advice.reasons),
    ]
    if selection.advice.export:
        advice = selection.advice
        header.append(f"# Deploy: visiontl export RUN --format {advice.export[0]} --precision {advice.export_precision}"
                      + "".join(f" (or --format {f})" for f in advice.export[1:])
                      + (f" ({advice.precision} is the deployment runtime's to apply)" if advice.export_precision != advice.precision else "") + ".")
    path.write_text("\n".join(header) + "\n" + yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path
