"""Ultralytics' Detection/Segmentation trainers with the hooks visiontl needs, by subclassing.

Each override replaces one step of Ultralytics' ``BaseTrainer`` with the visiontl behaviour;
the training loop itself (data pipeline, augmentation, loss, warm-up, EMA, early stopping,
plots) stays Ultralytics':

* ``get_dataset``: the dataset dict comes straight from visiontl's YOLO copy, so
  ``check_det_dataset`` (which resolves a relative ``path:`` against Ultralytics' datasets
  folder, may run download scripts and always checks for a font online) never runs;
* ``build_optimizer``: Ultralytics has just reset ``requires_grad`` on every parameter outside
  its own ``freeze`` list; the phase is applied again (gradients, eval locks) and the optimizer
  is visiontl's, one parameter group per layer group and decay/no-decay, each at its planned
  learning rate;
* ``validate``: visiontl's evaluator on the EMA weights (Ultralytics validates the EMA too); its
  primary metric is the fitness Ultralytics uses for best.pt and early stopping;
* ``final_eval``: nothing (every epoch was already evaluated);
* ``resume_training``: from a visiontl ``last.pt`` (optimizer, EMA, early stopping, epoch);
* ``save_model``: Ultralytics' own checkpoints only when asked for (visiontl writes its own);
* ``plot_training_samples`` and the validator's plots: only when the font is at hand;
* ``optimizer_step``: with the recipe's ``grad_clip`` when set (Ultralytics clips at 10).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from visiontl_ultralytics.trainer import PhaseHooks


def dataset_dict(data_yaml: str | Path) -> dict[str, Any]:
    """The dict ``check_det_dataset`` would return for a visiontl YOLO copy (absolute paths)."""
    import yaml

    path = Path(data_yaml)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    root = Path(data["path"])
    names = {int(k): str(v) for k, v in dict(data["names"]).items()}
    out: dict[str, Any] = {
        "yaml_file": str(path),
        "path": root,
        "train": str((root / data["train"]).resolve()),
        "val": str((root / data["val"]).resolve()),
        "names": names,
        "nc": len(names),
        "channels": 3,
    }
    return out


class VisiontlHooksMixin:
    """The overrides; ``self.visiontl`` (a :class:`PhaseHooks`) is set before ``train()``."""

    visiontl: PhaseHooks

    def get_dataset(self) -> dict[str, Any]:
        return dataset_dict(self.args.data)  # type: ignore[attr-defined]

    def build_optimizer(self, model: Any, name: str = "auto", lr: float = 0.001, momentum: float = 0.9,
                        decay: float = 1e-5, iterations: float = 1e5) -> Any:
        return self.visiontl.build_optimizer()

    def validate(self) -> tuple[dict[str, Any], float]:
        metrics, fitness = self.visiontl.validate(self)
        if self.best_fitness is None or self.best_fitness < fitness:  # type: ignore[attr-defined]
            self.best_fitness = fitness
        return metrics, fitness

    def final_eval(self) -> None:
        return None

    def resume_training(self, ckpt: Any) -> None:
        if self.visiontl.resume is not None:
            self.visiontl.resume_into(self)
            return None
        return super().resume_training(ckpt)  # type: ignore[misc]

    def save_model(self) -> bool:
        if self.visiontl.keep_weights:
            return super().save_model()  # type: ignore[misc]
        return False

    def plot_training_samples(self, batch: dict[str, Any], ni: int) -> None:
        if self.visiontl.draw_text:
            super().plot_training_samples(batch, ni)  # type: ignore[misc]

    def get_validator(self) -> Any:
        validator = super().get_validator()  # type: ignore[misc]
        validator.args.plots = bool(validator.args.plots and self.visiontl.draw_text)
        return validator

    def optimizer_step(self) -> None:
        clip = self.visiontl.grad_clip
        if clip is None:
            return super().optimizer_step()  # type: ignore[misc]
        import torch

        # Ultralytics' optimizer_step with the recipe's clipping norm instead of its fixed 10.
        self.scaler.unscale_(self.optimizer)  # type: ignore[attr-defined]
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=clip)  # type: ignore[attr-defined]
        self.scaler.step(self.optimizer)  # type: ignore[attr-defined]
        self.scaler.update()  # type: ignore[attr-defined]
        self.optimizer.zero_grad()  # type: ignore[attr-defined]
        if self.ema:  # type: ignore[attr-defined]
            self.ema.update(self.model)  # type: ignore[attr-defined]
        return None


@lru_cache(maxsize=2)
def trainer_class(segment: bool) -> type:
    """The visiontl subclass of Ultralytics' detection or segmentation trainer."""
    if segment:
        from ultralytics.models.yolo.segment import SegmentationTrainer as Base
    else:
        from ultralytics.models.yolo.detect import DetectionTrainer as Base
    return type(f"Visiontl{Base.__name__}", (VisiontlHooksMixin, Base), {"__module__": __name__})
