"""Scoring a trained model on one split, and saying exactly what was scored.

``visiontl eval`` and the test split scored at the end of a run share this: the same
datasets (the task's ``eval_dataset``), the same forward (``forward_eval``) and evaluator, and
the same record of what was scored (checkpoint, epoch, split, image count, folders), so that a
number never travels without the data it measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.config.loader import recipe_to_dict, validate_recipe
from visiontl.config.splits import without_splits

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from visiontl.config.schema import Recipe
    from visiontl.tasks.base import DataInfo, TaskAdapter
    from visiontl.trained import LoadedModel


def score_dataset(
    task: TaskAdapter,
    recipe: Recipe,
    info: DataInfo,
    loaded: LoadedModel,
    dataset: Any,
    *,
    device: torch.device | None = None,
    precision: str = "fp32",
) -> tuple[dict[str, Any], dict[str, str]]:
    """Run ``loaded`` over ``dataset`` and compute the task's metrics.

    An ensemble's members are scored on the same batches, from the same forward passes
    (their metrics under ``members``, see :func:`visiontl.api.evaluate`).

    Args:
        device: where to run (default: where the model is, the CPU for a loaded checkpoint).
        precision: the autocast of the run (``fp32``: none).

    Returns:
        (metrics, path -> reason for items unreadable when decoded).
    """
    import torch
    from torch.utils.data import DataLoader

    from visiontl.tasks.base import Batch
    from visiontl.train.precision import autocast

    device = device or next((p.device for p in loaded.model.parameters()), torch.device("cpu"))
    loaded.model.to(device)
    evaluator = task.evaluator(recipe, info)
    member_evaluators = [task.evaluator(recipe, info) for _ in loaded.members]
    skipped: dict[str, str] = {}
    loader = DataLoader(dataset, batch_size=recipe.train.batch_size, collate_fn=task.collate, num_workers=recipe.train.workers)
    with torch.no_grad(), autocast(precision, device):
        for batch in loader:
            assert isinstance(batch, Batch)
            skipped.update(batch.skipped)
            if not len(batch):
                continue
            batch = task.move_batch(batch, device)
            if member_evaluators:
                logits = loaded.model.member_logits(batch.inputs)
                for member_evaluator, member_logits in zip(member_evaluators, logits, strict=True):
                    member_evaluator.update(member_logits, batch.targets)
                evaluator.update(loaded.model.combine(logits), batch.targets)
            else:
                evaluator.update(task.forward_eval(loaded.model, batch), batch.targets)
    metrics = evaluator.compute()
    if member_evaluators:
        metrics.update(member_metrics(loaded, [e.compute() for e in member_evaluators], recipe.eval.metric or task.primary_metric))
    return metrics, skipped


def scored_split(loaded: LoadedModel, info: DataInfo, split: str, unreadable: int = 0) -> dict[str, Any]:
    """What was scored: ``checkpoint``, ``epoch`` (of a best checkpoint), ``split`` (``val``,
    ``test``, or ``explicit`` for ``eval --images``),
    ``images`` (usable ones, minus those unreadable when decoded), ``folder``, ``labels``
    (mask folder, annotation file or CSV, when not in the folder itself) and ``carved`` (how
    a validation split was cut from train)."""
    entry = ((info.provenance or {}).get("splits") or {}).get(split) or {}
    out: dict[str, Any] = {
        "checkpoint": str(loaded.checkpoint),
        "epoch": loaded.epoch,
        "split": split,
        "images": max(0, info.images(split) - unreadable),
        "folder": entry.get("path"),
    }
    for key in ("labels", "carved"):
        if entry.get(key):
            out[key] = entry[key]
    return out


def describe(scored: dict[str, Any]) -> list[str]:
    """Two lines for people: the checkpoint and the data scored.

    Example:
        >>> describe({"checkpoint": "r/best.pt", "epoch": 3, "split": "test", "images": 20,
        ...           "folder": "/d/test", "labels": "/d/testannot"})
        ['checkpoint: r/best.pt (epoch 3)', 'scored: test split, 20 images in /d/test (labels: /d/testannot)']
    """
    epoch = f" (epoch {scored['epoch']})" if scored.get("epoch") is not None else ""
    labels = f" (labels: {scored['labels']})" if scored.get("labels") else ""
    carved = f": {scored['carved']}" if scored.get("carved") else ""
    count = scored.get("images")
    images = f"{count} image{'s' if count != 1 else ''}"
    what = "explicit folders" if scored["split"] == "explicit" else f"{scored['split']} split"
    return [f"checkpoint: {scored['checkpoint']}{epoch}", f"scored: {what}, {images} in {scored.get('folder')}{labels}{carved}"]


def explicit_recipe(recipe: Recipe, task: TaskAdapter, images: Path, labels: Path | None) -> Recipe:
    """The recipe with ``images`` (and ``labels``) as its test split and no other split key:
    nothing of the training layout (``val_last``, ``val_images`` ...) can leak into what
    ``visiontl eval --images`` scores. Class settings (names, value map, classes yaml, ignore
    index) and sizes are kept.

    Raises:
        ConfigError: the task cannot score explicit folders, or the labels do not fit it.
    """
    data = without_splits(recipe_to_dict(recipe)["data"])
    data.update(task.explicit_split(recipe, images.resolve(), labels.resolve() if labels is not None else None))
    return validate_recipe({**recipe_to_dict(recipe), "data": data}, "(stored recipe with --images)")


def member_metrics(loaded: LoadedModel, computed: list[dict[str, Any]], primary: str) -> dict[str, Any]:
    """An ensemble's members next to it: ``members`` (a row per member: name, source, model
    id, weight and its scalar metrics) and ``<primary>@<member>`` keys that eval prints."""
    rows: list[dict[str, Any]] = []
    flat: dict[str, Any] = {}
    weights = loaded.model.weights
    for name, member, weight, metrics in zip(loaded.member_names, loaded.members, weights, computed, strict=True):
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        rows.append({"name": name, "source": str(member.checkpoint), "model_id": member.model_id, "weight": weight, **scalars})
        if primary in scalars:
            flat[f"{primary}@{name}"] = scalars[primary]
    return {**flat, "members": rows}
