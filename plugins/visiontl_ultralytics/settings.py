"""A recipe phase as Ultralytics train arguments.

visiontl owns what its recipe says (epochs per phase, batch, image size, learning rates,
optimizer, schedule, precision, device, seed, early stopping, augmentation preset);
Ultralytics' own knobs that visiontl has no word for (its augmentation hyperparameters, loss
gains, ``close_mosaic``, ``multi_scale`` ...) pass through ``model.options.ultralytics``.

* ``nbs`` is the batch size: one optimizer step per batch, as in visiontl's own loop
  (Ultralytics otherwise accumulates gradients up to 64 images).
* The schedule is per phase: ``cosine`` is Ultralytics' ``cos_lr`` from each group's rate down
  to ``min_lr_ratio`` of it, ``none`` a constant rate; ``scheduler.warmup_epochs`` is its
  per-batch linear warm-up, applied to every group from 0 to its own rate.
* ``close_mosaic`` closes mosaic for the last 10 epochs of the whole plan (Ultralytics' rule,
  spread over the phases), not of each phase.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.config.schema import Recipe
    from visiontl.freeze.plan import Plan

#: Ultralytics' augmentation hyperparameters with every augmentation off.
_NO_AUGMENTATION = {
    "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0, "degrees": 0.0, "translate": 0.0, "scale": 0.0,
    "shear": 0.0, "perspective": 0.0, "flipud": 0.0, "fliplr": 0.0, "mosaic": 0.0, "mixup": 0.0,
    "cutmix": 0.0, "copy_paste": 0.0,
}

#: visiontl augmentation presets in Ultralytics' terms (``standard`` is Ultralytics' default).
PRESETS: dict[str, dict[str, float]] = {
    "none": _NO_AUGMENTATION,
    "light": {**_NO_AUGMENTATION, "fliplr": 0.5, "hsv_h": 0.01, "hsv_s": 0.3, "hsv_v": 0.2, "translate": 0.05, "scale": 0.2},
    "standard": {},
    "strong": {"mixup": 0.1, "copy_paste": 0.1, "degrees": 5.0},
}

#: Train arguments visiontl sets from the recipe: ``model.options.ultralytics`` may not.
CONTROLLED = frozenset({
    "model", "data", "epochs", "time", "batch", "imgsz", "device", "workers", "project", "name", "exist_ok",
    "pretrained", "optimizer", "lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum",
    "warmup_bias_lr", "cos_lr", "nbs", "freeze", "amp", "seed", "deterministic", "patience", "val", "plots",
    "save", "save_period", "resume", "verbose", "task", "mode", "fraction", "single_cls", "classes", "compile",
    "distill_model", "quantize", "split",
})

SCHEDULES = ("cosine", "none")


def check_recipe(recipe: Recipe, device_type: str) -> None:
    """Refuse recipe settings that Ultralytics' trainer cannot honour (instead of ignoring them).

    Raises:
        ConfigError: naming the setting and what to use instead.
    """
    if recipe.train.precision == "bf16" and device_type != "cuda":
        raise ConfigError(
            f"train.precision bf16 with an Ultralytics model needs CUDA: Ultralytics' trainer autocasts to "
            f"bfloat16 on CUDA only, and this run is on {device_type}.",
            fix="use train.precision: fp32 on this device",
        )
    if recipe.scheduler.name not in SCHEDULES:
        raise ConfigError(
            f"scheduler.name '{recipe.scheduler.name}' is not available with Ultralytics' trainer, which sets the "
            "learning rate once per epoch.",
            fix="use scheduler.name: cosine (with min_lr_ratio and warmup_epochs) or none",
        )
    if recipe.train.cache_features == "on":
        raise ConfigError(
            "train.cache_features: on cannot be honoured by Ultralytics' trainer (it augments every epoch).",
            fix="set train.cache_features: auto or off",
        )
    if recipe.data.resize == "stretch":
        # Ultralytics letterboxes every image to a square imgsz (the longer side of
        # data.image_size); validation stretched to H x W would score other inputs.
        raise ConfigError(
            "data.resize: stretch cannot be honoured by Ultralytics' trainer, which letterboxes its inputs to a square "
            "of the longer side of data.image_size.",
            fix="use data.resize: auto or letterbox with an Ultralytics model",
        )


def user_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """``model.options.ultralytics``, checked against Ultralytics' own argument names.

    Raises:
        ConfigError: an unknown key (with did-you-mean) or one visiontl controls (with the
            recipe setting to use).
    """
    from ultralytics.cfg import DEFAULT_CFG_DICT

    from visiontl.ids import suggest

    out = dict(options)
    for key in out:
        if key in CONTROLLED:
            raise ConfigError(
                f"model.options.ultralytics.{key} is set by visiontl from the recipe.",
                fix="use the recipe's own setting (train.*, optimizer.*, scheduler.*, data.image_size, strategy.*)",
            )
        if key not in DEFAULT_CFG_DICT:
            close = suggest(key, DEFAULT_CFG_DICT, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"model.options.ultralytics.{key} is not an Ultralytics train argument.{hint}",
                fix="see Ultralytics' cfg/default.yaml for the valid names",
            )
    return out


def close_mosaic(plan: Plan, index: int, last_epochs: int = 10) -> int:
    """Epochs of phase ``index`` that fall in the plan's last ``last_epochs`` epochs."""
    start = plan.phase_start(index)
    end = start + plan.phases[index].epochs
    first_closed = plan.total_epochs - last_epochs
    return max(0, min(plan.phases[index].epochs, end - max(first_closed, start)))


def augmentation(preset: str, segment: bool) -> dict[str, float]:
    """Ultralytics hyperparameters for a visiontl preset (``auto`` resolved by the caller)."""
    if preset not in PRESETS:
        raise ConfigError(f"Unknown augmentation preset '{preset}' for an Ultralytics model.", fix=f"use one of {', '.join(PRESETS)}")
    hyp = dict(PRESETS[preset])
    if not segment:
        hyp.pop("copy_paste", None)
    return hyp


def train_args(
    recipe: Recipe,
    plan: Plan,
    index: int,
    *,
    data_yaml: Path,
    save_dir: Path,
    config: str,
    imgsz: int,
    device: str,
    preset: str,
    segment: bool,
    extra: dict[str, Any],
    verbose: bool,
) -> dict[str, Any]:
    """The ``overrides`` of the Ultralytics trainer for phase ``index`` of ``plan``."""
    phase = plan.phases[index]
    precision = recipe.train.precision
    args: dict[str, Any] = {
        "model": config,
        "data": str(data_yaml),
        "epochs": phase.epochs,
        "batch": recipe.train.batch_size,
        "nbs": recipe.train.batch_size,
        "imgsz": imgsz,
        "device": device,
        "workers": recipe.train.workers,
        "project": str(save_dir.parent),
        "name": save_dir.name,
        "exist_ok": True,
        "pretrained": False,
        # the optimizer itself is visiontl's (build_optimizer is overridden); these feed
        # Ultralytics' warm-up, which ramps every group to its own rate
        "lr0": 1.0,
        "momentum": recipe.optimizer.momentum,
        "warmup_momentum": recipe.optimizer.momentum,
        "weight_decay": recipe.optimizer.weight_decay,
        "warmup_epochs": recipe.scheduler.warmup_epochs,
        "cos_lr": recipe.scheduler.name == "cosine",
        "lrf": recipe.scheduler.min_lr_ratio if recipe.scheduler.name == "cosine" else 1.0,
        "amp": {"fp32": False, "bf16": "bf16", "fp16": True}[precision],
        "seed": recipe.train.seed + index,
        "patience": recipe.train.early_stopping.patience or 0,
        "val": True,
        "plots": recipe.output.plots,
        "save": True,
        "verbose": verbose,
        "close_mosaic": close_mosaic(plan, index),
        **augmentation(preset, segment),
    }
    args.update(extra)
    return args
