"""``visiontl_train`` for Ultralytics models: Ultralytics' trainer, driven by the visiontl plan.

One Ultralytics training per phase. A phase boundary changes which groups train, so each
phase gets a fresh Ultralytics trainer, optimizer, warm-up, schedule and EMA, exactly as the
shared loop rebuilds its optimizer and schedule per phase; the weights carried into the next
phase are the EMA weights Ultralytics would have saved. Per phase:

1. the phase is applied (``requires_grad``, eval locks on frozen modules) and the freeze audit
   takes its snapshot;
2. the subclassed Ultralytics trainer (:mod:`.ultra_trainer`) trains on a writable YOLO copy of
   the user's data (COCO or YOLO), made by ``visiontl.data.detection.export``;
3. when Ultralytics resets ``requires_grad`` at setup (ultralytics#4205) the phase is applied
   again before the optimizer is built from visiontl's parameter groups; frozen BatchNorm layers
   stay in eval through every ``model.train()`` (the eval lock; ultralytics#9391), and its EMA,
   which only averages equal values for frozen tensors, keeps them bit-identical;
4. each epoch, visiontl's evaluator scores the EMA weights on the validation records (the same
   code as every other detector), a row goes to ``metrics.csv``, ``last.pt``/``best.pt`` are
   written in visiontl's checkpoint format, and ``visiontl_on_epoch_end`` fires;
5. after the phase, the audit verifies the trained model and the EMA weights: any change to a
   frozen weight or BatchNorm statistic fails the run.

Resume: ``last.pt`` carries the raw and EMA weights, the optimizer and the early-stopping
state; a resumed run continues at the next epoch of the interrupted phase (Ultralytics'
augmentation randomness is not replayed).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from visiontl import log
from visiontl.contracts import TrainJob, TrainResult
from visiontl.errors import FreezeError, RunError, VisiontlError
from visiontl.freeze.apply import AppliedPhase, apply_phase
from visiontl.freeze.audit import FreezeAudit
from visiontl.freeze.modes import unlock_all
from visiontl.freeze.plan import Phase
from visiontl.train.checkpoint import load_checkpoint, model_payload, save_checkpoint
from visiontl.train.optim import build_optimizer
from visiontl.train.precision import autocast, check_precision, resolve_device
from visiontl_ultralytics import offline, settings


@dataclass
class RunState:
    """What a checkpoint carries to continue the run (plain data)."""

    next_phase: int = 0
    next_epoch_in_phase: int = 0
    epochs_done: int = 0
    best_metric: float | None = None
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    # When the run first started (ISO 8601) and the seconds trained up to the last checkpoint,
    # over every part of an interrupted and resumed run (as the shared loop keeps them).
    started: str | None = None
    elapsed_s: float = 0.0


def train(job: TrainJob) -> TrainResult:
    """Train ``job.built.model`` through ``job.plan`` with Ultralytics' trainer."""
    return UltralyticsDriver(job).run()


def ultralytics_device(device: torch.device) -> str:
    """A torch device in Ultralytics' spelling (``cpu``, ``0``, ``mps``)."""
    if device.type == "cuda":
        return str(device.index or 0)
    return device.type


class PhaseHooks:
    """What the subclassed trainer calls back into during one phase."""

    def __init__(self, driver: UltralyticsDriver, phase: Phase, index: int, resume: dict[str, Any] | None) -> None:
        self.driver = driver
        self.phase = phase
        self.index = index
        self.resume = resume
        options = driver.options
        self.keep_weights = bool(options["keep_ultralytics_weights"])
        self.ultralytics_val = bool(options["ultralytics_val"])
        self.grad_clip = driver.recipe.optimizer.grad_clip
        self.draw_text = driver.draw_text
        self.applied: AppliedPhase | None = None
        self.regranted = 0
        self.trainer: Any = None

    # ------------------------------------------------------------------ optimizer
    def build_optimizer(self) -> torch.optim.Optimizer:
        """Re-apply the phase after Ultralytics' setup, then visiontl's optimizer groups."""
        driver = self.driver
        planned = set(driver.applied.frozen_params) if driver.applied else set()
        params = dict(driver.model.named_parameters())
        self.regranted = sum(1 for n in planned if params[n].requires_grad)
        self.applied = apply_phase(driver.model, driver.job.groups, self.phase, driver.recipe.optimizer.weight_decay)
        if set(self.applied.frozen_params) != planned:
            raise FreezeError(f"Phase '{self.phase.name}' froze different parameters when re-applied inside Ultralytics' trainer.")
        return build_optimizer(self.applied.param_groups, driver.recipe.optimizer)

    def check_frozen(self, trainer: Any) -> None:
        """After Ultralytics' setup (callback): every frozen parameter still frozen."""
        params = dict(self.driver.model.named_parameters())
        assert self.applied is not None, "build_optimizer was not called"
        live = [n for n in self.applied.frozen_params if params[n].requires_grad]
        if live:
            raise FreezeError(
                f"After Ultralytics' setup {len(live)} frozen parameter(s) require gradients again (e.g. {live[0]}).",
                fix="report it: the visiontl Ultralytics plugin no longer neutralises this Ultralytics version's reset",
            )

    def resume_into(self, trainer: Any) -> None:
        """Restore an interrupted phase's optimizer, EMA and early stopping (mid-phase resume)."""
        state = self.resume
        assert state is not None
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.ema.ema.load_state_dict(state["ema"])
        trainer.ema.updates = int(state["ema_updates"])
        trainer.best_fitness = state["best_fitness"]
        trainer.stopper.__dict__.update(state["stopper"])
        trainer.start_epoch = int(state["start_epoch"])

    # ------------------------------------------------------------------ validation
    def ema_view(self, trainer: Any) -> Any:
        net = trainer.ema.ema if trainer.ema is not None else trainer.model
        return self.driver.model.with_net(net)

    def validate(self, trainer: Any) -> tuple[dict[str, Any], float]:
        """visiontl's evaluator on the EMA weights; its primary metric is the fitness."""
        driver = self.driver
        metrics = driver.evaluate(self.ema_view(trainer))
        if self.ultralytics_val:
            own = trainer.validator(trainer) or {}
            own.pop("fitness", None)
            metrics.update({f"ultralytics/{k}": float(v) for k, v in own.items() if isinstance(v, (int, float))})
        driver.last_metrics = metrics
        value = float(metrics.get(driver.primary, float("nan")))
        fitness = value if driver.higher_is_better else -value
        # a NaN fitness (no objects in the validation set) would trigger Ultralytics' NaN recovery
        fitness = fitness if math.isfinite(fitness) else -1.0
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return scalars, fitness

    # ------------------------------------------------------------------ epoch end
    def on_fit_epoch_end(self, trainer: Any) -> None:
        self.driver.epoch_end(self, trainer)


class UltralyticsDriver:
    """Runs the plan's phases, one Ultralytics training each."""

    def __init__(self, job: TrainJob) -> None:
        self.job = job
        self.recipe = job.recipe
        self.task = job.task
        self.model: Any = job.built.model
        self.extras = dict(job.built.extras.get("ultralytics", {}))
        self.options = dict(self.extras.get("options", {}))
        self.segment = bool(self.extras.get("segment", False))
        self.primary = self.recipe.eval.metric or self.task.primary_metric
        # The direction of the metric that picks the best epoch (eval.metric's, not always the
        # primary metric's).
        self.higher_is_better = self.task.higher_is_better_for(self.primary)
        self.device = resolve_device(self.recipe.train.device)
        check_precision(self.recipe.train.precision, self.device)
        settings.check_recipe(self.recipe, self.device.type)
        self.extra_args = settings.user_overrides(self.options.get("ultralytics", {}))
        size = self.recipe.data.image_size or int(self.options.get("imgsz", 640))
        self.imgsz = int(math.ceil(size / 32) * 32)
        self.state = RunState()
        self.applied: AppliedPhase | None = None
        self.audits: list[dict[str, Any]] = []
        self.last_metrics: dict[str, Any] = {}
        self.notes: list[str] = []
        self.draw_text = False
        self.resume_state: dict[str, Any] | None = None
        self._before = 0.0  # seconds trained before an interruption
        self._started = 0.0  # perf_counter() when this part of the run started

    # ------------------------------------------------------------------ data
    def _write_yolo_copy(self, root: Path) -> Path:
        from visiontl.data.detection.export import write_yolo_dataset

        extras = self.job.data_info.extras
        if "train_records" not in extras or "val_records" not in extras:
            raise RunError(
                f"Task '{self.task.name}' gave no detection records to train an Ultralytics model on.",
                fix="use task: detection or instance_segmentation with data.format coco or yolo",
            )
        return write_yolo_dataset(self.job.data_info.class_names, extras["train_records"], extras["val_records"], root / "data", self.segment)

    def _preset(self) -> str:
        preset = self.recipe.augmentation.preset
        if preset == "auto":
            resolve = getattr(self.task, "resolved_preset", None)
            preset = resolve(self.recipe, self.job.data_info) if resolve else "standard"
        return preset

    def evaluate(self, model: Any) -> dict[str, Any]:
        """The task's evaluator over the validation set, for ``model`` (a YoloModel)."""
        from torch.utils.data import DataLoader

        evaluator = self.task.evaluator(self.recipe, self.job.data_info)
        loader = DataLoader(self.val_set, batch_size=self.recipe.train.batch_size, shuffle=False,
                            num_workers=self.recipe.train.workers, collate_fn=self.task.collate)
        model.eval()
        with torch.no_grad():
            for batch in loader:
                for path, reason in batch.skipped.items():
                    if path not in self.state.skipped:
                        self.state.skipped[path] = reason
                        log.warning(f"skipped unreadable image {path}: {reason}")
                if not len(batch):
                    continue
                batch = self.task.move_batch(batch, self.device)
                with autocast(self.recipe.train.precision, self.device):
                    outputs = self.task.forward_eval(model, batch)
                evaluator.update(outputs, batch.targets)
        return evaluator.compute()

    # ------------------------------------------------------------------ resume
    def _restore(self) -> None:
        if self.job.resume_from is None:
            return
        ckpt = load_checkpoint(self.job.resume_from)
        train_state = ckpt.get("train_state")
        if not train_state or "ultralytics" not in train_state:
            raise RunError(f"Checkpoint '{self.job.resume_from}' has no Ultralytics training state to resume from.",
                           fix="resume from checkpoints/last.pt of a run trained by this plugin")
        self.model.load_state_dict(train_state["ultralytics"]["raw_model"])
        self.state = RunState(**train_state["loop"])
        if self.state.next_epoch_in_phase > 0:
            ema = {k[len("net."):]: v for k, v in ckpt["model"].items() if k.startswith("net.")}
            self.resume_state = {**train_state["ultralytics"], "ema": ema, "start_epoch": self.state.next_epoch_in_phase}

    # ------------------------------------------------------------------ phases
    def run(self) -> TrainResult:
        """Train every remaining phase and return the results."""
        offline.import_ultralytics()
        self.model.imgsz = self.imgsz
        self.model.to(self.device)
        _, self.val_set = self.task.datasets(self.recipe, self.job.data_info, self.job.built.preprocessing, self.job.data_root)
        self.n_train = len(self.job.data_info.extras.get("train_records", []))
        self.draw_text = bool(self.recipe.output.plots) and offline.can_draw_text()
        if self.recipe.output.plots and not self.draw_text:
            from ultralytics.utils import USER_CONFIG_DIR

            self.notes.append(f"Ultralytics' labelled image mosaics skipped: {offline.FONT} is not on disk (a run never "
                              f"downloads; copy the font into {USER_CONFIG_DIR} to get them)")
        self._restore()
        started = time.perf_counter()
        self._before = self.state.elapsed_s  # trained before an interruption (0 for a fresh run)
        self._started = started
        if self.state.started is None:
            from datetime import datetime

            self.state.started = (getattr(self.job.run, "started", None) or datetime.now().astimezone()).isoformat()
        work = Path(tempfile.mkdtemp(prefix="visiontl-yolo-"))
        try:
            data_yaml = self._write_yolo_copy(work)
            for index in range(self.state.next_phase, len(self.job.plan.phases)):
                resume = self.resume_state if index == self.state.next_phase else None
                self._run_phase(index, data_yaml, resume)
                self.resume_state = None
        finally:
            shutil.rmtree(work, ignore_errors=True)
            unlock_all(self.model)
            self.model.net.criterion = None
            self.model._criterion = None
        if not self.last_metrics:
            self.last_metrics = self.evaluate(self.model)
        return TrainResult(
            best_metric=float(self.state.best_metric if self.state.best_metric is not None else float("nan")),
            best_epoch=self.state.best_epoch,
            final_metrics=self.last_metrics,
            history=self.state.history,
            primary_metric=self.primary,
            timings={**{f"phase_{k}": v for k, v in self.state.phase_seconds.items()}, "train_total": self._before + time.perf_counter() - started},
            skipped=dict(self.state.skipped),
            extras={
                "audits": self.audits,
                "device": str(self.device),
                "precision": self.recipe.train.precision,
                "ultralytics": {
                    "version": _ultralytics_version(),
                    "config": self.extras.get("config"),
                    "head": self.extras.get("head"),
                    "imgsz": self.imgsz,
                    "augmentation": self._preset(),
                    "notes": self.notes,
                },
            },
        )

    def _run_phase(self, index: int, data_yaml: Path, resume: dict[str, Any] | None) -> None:
        phase = self.job.plan.phases[index]
        self.applied = apply_phase(self.model, self.job.groups, phase, self.recipe.optimizer.weight_decay)
        audit = FreezeAudit.snapshot(self.model, self.applied.frozen_params, self.applied.stat_buffers, phase.name)
        if resume is None:
            self.job.fire("visiontl_on_phase_start", run=self.job.run, phase=phase, index=index)
        hooks = PhaseHooks(self, phase, index, resume)
        save_dir = self.job.run.path / "ultralytics" / f"phase{index + 1}_{phase.name}"
        args = settings.train_args(
            self.recipe, self.job.plan, index, data_yaml=data_yaml, save_dir=save_dir,
            config=str(self.extras.get("config", "yolov8n.yaml")), imgsz=self.imgsz,
            device=ultralytics_device(self.device), preset=phase.augmentation or self._preset(),
            segment=self.segment, extra=self.extra_args, verbose=self.recipe.train.progress == "bars",
        )
        args["lr0"] = max(phase.lrs[g] for g in phase.trainable)
        trainer = self._make_trainer(args, hooks)
        started = time.perf_counter()
        with offline.ultralytics_logging(self.recipe.train.progress == "bars"):
            try:
                trainer.train()
            except VisiontlError:
                raise
            except Exception as exc:  # noqa: BLE001 - Ultralytics' failures become one visiontl error
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise RunError(f"Ultralytics training failed in phase '{phase.name}': {type(exc).__name__}: {first}") from exc
        self.state.phase_seconds[phase.name] = self.state.phase_seconds.get(phase.name, 0.0) + time.perf_counter() - started
        weights_dir = save_dir / "weights"
        if weights_dir.is_dir() and not any(weights_dir.iterdir()):
            weights_dir.rmdir()  # Ultralytics makes it up front; visiontl's checkpoints are elsewhere
        raw = audit.verify(self.model)  # the weights Ultralytics trained
        if trainer.ema is not None:
            self.model.net.load_state_dict(trainer.ema.ema.state_dict())
        report = audit.verify(self.model)  # the EMA weights carried on (and saved)
        self.audits.append({**report.as_dict(), "verified": ["trained weights", "EMA weights"],
                            "raw_params_checked": raw.params_checked,
                            "ultralytics_regranted_requires_grad": hooks.regranted})
        if hooks.regranted:
            log.info(f"phase '{phase.name}': Ultralytics re-enabled gradients on {hooks.regranted} frozen parameter(s) "
                     "at setup; visiontl re-applied the phase before building the optimizer")
        self.job.fire("visiontl_on_phase_end", run=self.job.run, phase=phase, index=index, audit=report)

    def _make_trainer(self, args: dict[str, Any], hooks: PhaseHooks) -> Any:
        from ultralytics.utils import callbacks as ultralytics_callbacks

        from visiontl_ultralytics.ultra_trainer import trainer_class

        cls = trainer_class(self.segment)
        with offline.ultralytics_logging(self.recipe.train.progress == "bars"):
            trainer = cls(overrides=args)
        # Integration callbacks (Platform, telemetry, ClearML, MLflow ...) talk to servers:
        # a visiontl run keeps only Ultralytics' no-op defaults plus its own.
        trainer.callbacks = ultralytics_callbacks.get_default_callbacks()
        trainer.add_callback("on_pretrain_routine_end", hooks.check_frozen)
        trainer.add_callback("on_fit_epoch_end", hooks.on_fit_epoch_end)
        trainer.visiontl = hooks
        trainer.model = self.model.net
        self.model.net.criterion = None  # built afresh from this phase's arguments
        hooks.trainer = trainer
        return trainer

    # ------------------------------------------------------------------ bookkeeping
    def _improved(self, value: float) -> bool:
        best = self.state.best_metric
        if best is None or (isinstance(best, float) and math.isnan(best)):
            return not math.isnan(value)
        delta = self.recipe.train.early_stopping.min_delta
        return value > best + delta if self.higher_is_better else value < best - delta

    def epoch_end(self, hooks: PhaseHooks, trainer: Any) -> None:
        """One row, checkpoints and the epoch event (Ultralytics' ``on_fit_epoch_end``)."""
        phase, index = hooks.phase, hooks.index
        metrics = self.last_metrics
        value = float(metrics.get(self.primary, float("nan")))
        losses = {k: float(v) for k, v in (trainer.tloss or {}).items()}
        self.state.epochs_done += 1
        row: dict[str, Any] = {
            "epoch": self.state.epochs_done,
            "phase": phase.name,
            "phase_epoch": int(trainer.epoch) + 1,
            "train_loss": sum(losses.values()),
            **{f"train_{k}": v for k, v in losses.items()},
            **{k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
            **{f"lr_{g['group']}": g["lr"] for g in reversed(trainer.optimizer.param_groups)},
            "train_images": self.n_train,
            "seconds": float(trainer.epoch_time or 0.0),
        }
        improved = self._improved(value)
        if improved:
            self.state.best_metric, self.state.best_epoch = value, self.state.epochs_done
        self.state.history.append(row)
        self.job.run.write_metrics(self.state.history)
        finished = trainer.stop or int(trainer.epoch) + 1 >= phase.epochs
        self.state.next_phase, self.state.next_epoch_in_phase = (index + 1, 0) if finished else (index, int(trainer.epoch) + 1)
        self._save(hooks, trainer, improved)
        self._print(row)
        self.job.fire("visiontl_on_epoch_end", run=self.job.run, phase=phase, epoch=self.state.epochs_done, metrics=row)

    def _save(self, hooks: PhaseHooks, trainer: Any, improved: bool) -> None:
        if not self.recipe.output.checkpoints:
            return
        view = hooks.ema_view(trainer)
        self.state.elapsed_s = self._before + time.perf_counter() - self._started
        train_state = {
            "loop": asdict(self.state),
            "ultralytics": {
                "raw_model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": trainer.optimizer.state_dict(),
                "ema_updates": int(trainer.ema.updates) if trainer.ema is not None else 0,
                "best_fitness": None if trainer.best_fitness is None else float(trainer.best_fitness),
                "stopper": {k: (float(v) if hasattr(v, "item") or isinstance(v, float) else v)
                            for k, v in trainer.stopper.__dict__.items()},
            },
        }
        save_checkpoint(self.job.run.last, {**model_payload(self.job, view), "train_state": train_state})
        if improved:
            save_checkpoint(self.job.run.best, {**model_payload(self.job, view), "epoch": self.state.best_epoch})

    def _print(self, row: dict[str, Any]) -> None:
        # train.progress 'lines' (or false) hides Ultralytics' bars, not these lines.
        if self.recipe.train.progress == "none":
            return
        from tqdm.auto import tqdm

        total = self.job.plan.total_epochs
        tqdm.write(
            f"epoch {row['epoch']:>3}/{total} [{row['phase']} {row['phase_epoch']}] train_loss {row['train_loss']:.4f} "
            f"{self.primary} {row.get(self.primary, float('nan')):.4f} {row['seconds']:.1f}s"
        )


def _ultralytics_version() -> str:
    import importlib.metadata as md

    try:
        return md.version("ultralytics")
    except md.PackageNotFoundError:
        return "unknown"
