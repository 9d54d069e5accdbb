"""The shared training loop: phases of epochs of batches, written against a TaskAdapter.

Each step is a small method; events fire through the plugin hooks so loggers and callbacks
are plugins. Randomness is re-seeded from ``(seed, phase, epoch)`` at every epoch, which makes
a resumed run take exactly the path of an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import torch
from torch.utils.data import DataLoader

from visiontl import log
from visiontl.contracts import TrainJob, TrainResult
from visiontl.errors import ConfigError, DataError, RunError
from visiontl.freeze.apply import AppliedPhase, apply_phase
from visiontl.freeze.audit import FreezeAudit
from visiontl.freeze.plan import Phase
from visiontl.tasks.base import Batch
from visiontl.train import distributed
from visiontl.train.cache import (
    MAX_CACHE_GB,
    CacheDecision,
    FeatureCache,
    cache_preconditions,
    estimate_gb,
    verify_split,
)
from visiontl.train.checkpoint import CheckpointWriter, load_checkpoint, model_payload
from visiontl.train.optim import Schedule, build_optimizer, build_schedule
from visiontl.train.precision import autocast, check_precision, grad_scaler, resolve_device


def epoch_seed(seed: int, phase_index: int, epoch_in_phase: int) -> int:
    """The seed of one epoch: a pure function of where the epoch is in the plan."""
    return (seed * 1_000_003 + phase_index * 10_007 + epoch_in_phase * 101) % (2**31 - 1)


@dataclass
class LoopState:
    """What a checkpoint must carry to continue a run exactly."""

    next_phase: int = 0
    next_epoch_in_phase: int = 0
    epochs_done: int = 0
    best_metric: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    # When the run first started (ISO 8601) and the seconds trained up to the last checkpoint,
    # over every part of an interrupted and resumed run.
    started: str | None = None
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SharedTrainingLoop:
    """Train ``job.built.model`` through ``job.plan`` on the task's datasets."""

    def __init__(self, job: TrainJob) -> None:
        self.job = job
        self.writer = CheckpointWriter()
        self.recipe = job.recipe
        self.task = job.task
        self.model = job.built.model
        self.ctx = distributed.from_env()
        self.device = distributed.device_for(self.ctx, resolve_device(self.recipe.train.device))
        distributed.init(self.ctx, self.device)
        self.rank_batch = distributed.check_batch(self.ctx, self.recipe.train.batch_size)
        self.train_model: torch.nn.Module = job.built.model
        self.precision = self.recipe.train.precision
        check_precision(self.precision, self.device)
        self.state = LoopState()
        self.audits: list[dict[str, Any]] = []
        self.cache_notes: dict[str, str] = {}
        self.cache_seconds: dict[str, float] = {}

    # ------------------------------------------------------------------ setup
    def _autocast(self) -> Any:
        return autocast(self.precision, self.device)

    def _setup(self) -> None:
        self.model.to(self.device)
        if self.recipe.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.phase_recipe = self.recipe
        self.train_set, self.val_set = self.task.datasets(self.recipe, self.job.data_info, self.job.built.preprocessing, self.job.data_root)
        if len(self.train_set) == 0:
            raise DataError("The training set is empty.")
        self.loss_fn = self.task.loss_function(self.recipe, self.job.data_info)
        self.distiller = None
        if self.recipe.distill is not None:
            from visiontl.train.distill import Distiller

            self.distiller = Distiller.from_section(
                self.recipe.distill, list(self.job.data_info.class_names), self.task.name, self.job.built.preprocessing.with_size(self.recipe.data.image_size), self.device
            )

    def _loader(self, dataset: Any, shuffle: bool, seed: int) -> DataLoader:
        """Training batches (this rank's share, shuffled with ``seed``) or, unshuffled, every
        item in order (evaluation and caching: each rank sees the whole set)."""
        train = self.recipe.train
        if shuffle:
            batches = list(self._index_batches(dataset, seed))
        else:
            order = list(range(len(dataset)))
            batches = [order[i:i + train.batch_size] for i in range(0, len(order), train.batch_size)]
        # The loader gets its own seeded generator: nothing here draws from the global RNG,
        # so dropout sees the same stream cached or not, resumed or not.
        return DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=train.workers,
            collate_fn=self.task.collate,
            generator=torch.Generator().manual_seed(seed + 2),
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",
        )

    def _index_batches(self, dataset: Any, seed: int) -> Iterator[list[int]]:
        """This rank's index batches of a shuffled epoch (the same on the cached path)."""
        return distributed.epoch_batches(len(dataset), self.recipe.train.batch_size, seed + 1, self.ctx)

    def _progress(self, iterable: Any, total: int, desc: str) -> Any:
        if self.recipe.train.progress != "bars":
            return iterable
        from tqdm.auto import tqdm

        # disable=None: bars only on a terminal; logs and CI get the per-epoch lines alone.
        return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, disable=None)

    def _note_skipped(self, skipped: dict[str, str]) -> None:
        for path, reason in skipped.items():
            if path not in self.state.skipped:
                self.state.skipped[path] = reason
                log.warning(f"skipped unreadable image {path}: {reason}")

    # ------------------------------------------------------------------ resume
    def _restore(self) -> dict[str, Any] | None:
        if self.job.resume_from is None:
            return None
        ckpt = load_checkpoint(self.job.resume_from)
        train_state = ckpt.get("train_state")
        if train_state is None:
            raise RunError(f"Checkpoint '{self.job.resume_from}' has no training state to resume from.", fix="resume from last.pt of the run")
        self.model.load_state_dict(ckpt["model"])
        self.state = LoopState(**train_state["loop"])
        return train_state

    # ------------------------------------------------------------------ steps
    def _train_step(self, batch: Batch, optimizer: torch.optim.Optimizer, schedule: Schedule, scaler: Any, outputs_fn: Any) -> float:
        with self._autocast():
            loss = outputs_fn(batch)
        if not torch.isfinite(loss):
            raise RunError(
                f"Training loss became {loss.item()} at epoch {self.state.epochs_done + 1}.",
                fix="lower optimizer.lr, enable optimizer.grad_clip, or use train.precision: fp32",
            )
        optimizer.zero_grad(set_to_none=True)
        clip = self.recipe.optimizer.grad_clip
        params = [p for g in optimizer.param_groups for p in g["params"]]
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
        schedule.step_batch()
        return float(loss.detach().item())

    def _batch_loss(self, batch: Batch) -> torch.Tensor:
        loss, outputs = self.task.forward_train(self.train_model, batch, self.loss_fn)
        if self.distiller is not None:
            loss = self.distiller.loss(outputs, batch.inputs, loss)
        return loss

    def _train_epoch(
        self,
        phase: Phase,
        seed: int,
        optimizer: torch.optim.Optimizer,
        schedule: Schedule,
        scaler: Any,
        cache: FeatureCache | None,
    ) -> tuple[float, int]:
        self.model.train()
        total, count = 0.0, 0
        mix_gen = torch.Generator().manual_seed(seed + 3)
        desc = f"{phase.name} ep {self.state.next_epoch_in_phase + 1}/{phase.epochs}"
        if cache is not None:
            split = self.job.built.split
            assert split is not None
            batches = self._index_batches(self.train_set, seed)
            n_batches = math.ceil(len(self.train_set) / self.recipe.train.batch_size)
            for indices in self._progress(batches, n_batches, desc + " (cached)"):
                got = cache.batch(indices, self.device)
                if got is None:
                    continue
                feats, targets, present = got
                batch = Batch(feats, targets, present, [])
                loss = self._train_step(batch, optimizer, schedule, scaler, lambda b: self.loss_fn(split.head(b.inputs), b.targets))
                total += loss * len(present)
                count += len(present)
            return total / max(1, count), count
        loader = self._loader(self.train_set, shuffle=True, seed=seed)
        for batch in self._progress(loader, len(loader), desc):
            self._note_skipped(batch.skipped)
            if not len(batch):
                continue
            batch = self.task.move_batch(batch, self.device, self.recipe.train.channels_last)
            batch = self.task.prepare_train_batch(batch, self.phase_recipe, self.job.data_info, mix_gen)
            loss = self._train_step(batch, optimizer, schedule, scaler, self._batch_loss)
            total += loss * len(batch)
            count += len(batch)
        mean_loss, count = distributed.mean(total / max(1, count), count, self.ctx)
        if count == 0:
            raise DataError("Every training image of this epoch was unreadable; nothing is left to train on.")
        return mean_loss, count

    def _evaluate(self, cache: FeatureCache | None) -> dict[str, Any]:
        # Every rank evaluates the whole validation set with rank 0's statistics, so every
        # rank takes the same best-epoch and early-stopping decisions without talking.
        distributed.sync_buffers(self.model, self.ctx)
        self.model.eval()
        evaluator = self.task.evaluator(self.recipe, self.job.data_info)
        with torch.no_grad():
            if cache is not None:
                split = self.job.built.split
                assert split is not None
                indices = sorted(cache.features)
                bs = self.recipe.train.batch_size
                for start in range(0, len(indices), bs):
                    got = cache.batch(indices[start:start + bs], self.device)
                    if got is None:
                        continue
                    feats, targets, _ = got
                    with self._autocast():
                        outputs = split.head(feats)
                    evaluator.update(outputs, targets)
            else:
                loader = self._loader(self.val_set, shuffle=False, seed=0)
                for batch in self._progress(loader, len(loader), "val"):
                    self._note_skipped(batch.skipped)
                    if not len(batch):
                        continue
                    batch = self.task.move_batch(batch, self.device, self.recipe.train.channels_last)
                    with self._autocast():
                        outputs = self.task.forward_eval(self.model, batch)
                    evaluator.update(outputs, batch.targets)
        self.model.train()
        return evaluator.compute()

    # ------------------------------------------------------------------ caching
    def _phase_caches(self, phase: Phase) -> tuple[FeatureCache | None, FeatureCache | None]:
        mode = self.recipe.train.cache_features
        if self.ctx.enabled:
            decision = CacheDecision(False, "distributed training (each process would need every feature)")
        elif self.distiller is not None:
            decision = CacheDecision(False, "distillation (the teacher sees the images)")
        else:
            decision = cache_preconditions(
                self.job.built.split, self.task, self.task.deterministic_train_transform(self.phase_recipe), phase.bn, mode
            )
        if decision.use:
            split = self.job.built.split
            assert split is not None
            probe = next(iter(self._loader(self.train_set, shuffle=False, seed=0)))
            probe = self.task.move_batch(probe, self.device, self.recipe.train.channels_last)
            decision = verify_split(self.model, split, probe.inputs, self._autocast) if len(probe) else decision
            if decision.use:
                with torch.no_grad(), self._autocast():
                    sample = split.features(probe.inputs[:1])
                gb = estimate_gb(sample, len(self.train_set) + len(self.val_set))
                if gb > MAX_CACHE_GB:
                    decision.use, decision.reason = False, f"the cache would need {gb:.1f} GiB (> VISIONTL_CACHE_MAX_GB={MAX_CACHE_GB:g})"
        self.cache_notes[phase.name] = ("cached: " if decision.use else "not cached: ") + decision.reason
        if not decision.use:
            if mode == "on" and set(phase.trainable) <= self._head_groups():
                raise ConfigError(f"train.cache_features is 'on' but phase '{phase.name}' cannot be cached: {decision.reason}.", fix="set train.cache_features: auto")
            return None, None
        split = self.job.built.split
        assert split is not None
        self.model.train()

        def move(b: Batch) -> Batch:
            return self.task.move_batch(b, self.device, self.recipe.train.channels_last)

        started = time.perf_counter()
        train_cache = FeatureCache.build(split, self._loader(self.train_set, False, 0), move, self._autocast, self._note_skipped)
        val_cache = FeatureCache.build(split, self._loader(self.val_set, False, 0), move, self._autocast, self._note_skipped)
        seconds = time.perf_counter() - started
        self.cache_seconds[phase.name] = seconds
        self.cache_notes[phase.name] += f" (built in {seconds:.1f} s)"
        return train_cache, val_cache

    def _use_phase_augmentation(self, phase: Phase) -> None:
        """Rebuild the training set when a phase asks for another augmentation preset."""
        preset = phase.augmentation or self.recipe.augmentation.preset
        if preset == self.phase_recipe.augmentation.preset:
            return
        augmentation = self.recipe.augmentation.model_copy(update={"preset": preset})
        self.phase_recipe = self.recipe.model_copy(update={"augmentation": augmentation})
        self.train_set, _ = self.task.datasets(self.phase_recipe, self.job.data_info, self.job.built.preprocessing, self.job.data_root)

    def _head_groups(self) -> set[str]:
        return {g.name for g in self.job.groups if g.role == "head"}

    # ------------------------------------------------------------------ bookkeeping
    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False  # a NaN metric is never the best epoch
        best = self.state.best_metric
        if best is None:
            return True
        delta = self.recipe.train.early_stopping.min_delta
        # The direction of the metric that picks the best epoch: eval.metric's own (val_loss,
        # an error such as MAE ...), not always the primary metric's.
        return value > best + delta if self.task.higher_is_better_for(self._primary()) else value < best - delta

    def _primary(self) -> str:
        """The metric that picks the best epoch, stops early and drives a plateau scheduler."""
        return self.recipe.eval.metric or self.task.primary_metric

    def _payload(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = model_payload(self.job, self.model)
        if extra:
            payload.update(extra)
        return payload

    def _save(self, best: bool, optimizer: torch.optim.Optimizer, schedule: Schedule, scaler: Any) -> None:
        if not self.recipe.output.checkpoints or not self.ctx.is_main:
            return
        train_state = {
            "loop": self.state.as_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
        }
        items = [(self.job.run.last, self._payload({"train_state": train_state}))]
        if best:
            items.append((self.job.run.best, self._payload({"epoch": self.state.best_epoch})))
        self.writer.submit(items)

    # ------------------------------------------------------------------ run
    def run(self) -> TrainResult:
        """Train every remaining phase and return the results.

        Checkpoints are written in the background (:class:`CheckpointWriter`); every write is
        finished before this returns or raises, so an interrupted run leaves its last one.
        """
        try:
            result = self._run_phases()
        except BaseException:
            try:
                self.writer.wait()
            except RunError as write_error:  # the training error is the one to report
                log.warning(str(write_error))
            raise
        self.writer.wait()
        return result

    def _run_phases(self) -> TrainResult:
        self._setup()
        resumed = self._restore()
        plan = self.job.plan
        primary = self._primary()
        started = time.perf_counter()
        before = self.state.elapsed_s  # trained before an interruption (0 for a fresh run)
        if self.state.started is None:
            run_started = getattr(self.job.run, "started", None) or datetime.now().astimezone()
            self.state.started = run_started.isoformat()
        for index in range(self.state.next_phase, len(plan.phases)):
            phase = plan.phases[index]
            self._use_phase_augmentation(phase)
            applied: AppliedPhase = apply_phase(self.model, self.job.groups, phase, self.recipe.optimizer.weight_decay)
            # DDP registers the parameters that need gradients when it is built: rebuild it
            # whenever a phase changes them.
            self.train_model = distributed.wrap(self.model, self.ctx, self.device)
            optimizer = build_optimizer(applied.param_groups, self.recipe.optimizer)
            steps = math.ceil(len(self.train_set) / self.recipe.train.batch_size)
            schedule = build_schedule(optimizer, self.recipe.scheduler, steps, phase.epochs, self.task.higher_is_better_for(primary))
            scaler = grad_scaler(self.precision, self.device)
            first_epoch = 0
            if resumed is not None and self.state.next_epoch_in_phase > 0:
                optimizer.load_state_dict(resumed["optimizer"])
                schedule.load_state_dict(resumed["scheduler"])
                if scaler is not None and resumed.get("scaler"):
                    scaler.load_state_dict(resumed["scaler"])
                first_epoch = self.state.next_epoch_in_phase
            else:
                self.state.bad_epochs = 0
            resumed = None
            audit = FreezeAudit.snapshot(self.model, applied.frozen_params, applied.stat_buffers, phase.name)
            self._fire("visiontl_on_phase_start", run=self.job.run, phase=phase, index=index)
            train_cache, val_cache = self._phase_caches(phase)
            for epoch_in_phase in range(first_epoch, phase.epochs):
                self.state.next_phase, self.state.next_epoch_in_phase = index, epoch_in_phase
                seed = epoch_seed(self.recipe.train.seed, index, epoch_in_phase)
                torch.manual_seed(seed)
                t0 = time.perf_counter()
                train_loss, seen = self._train_epoch(phase, seed, optimizer, schedule, scaler, train_cache)
                train_seconds = time.perf_counter() - t0
                metrics = self._evaluate(val_cache)
                value = float(metrics[primary])
                if not math.isfinite(train_loss):
                    # Divergence: every later epoch would train on non-finite weights and a
                    # "best" checkpoint could be chosen from garbage.
                    raise RunError(
                        f"Training diverged in phase '{phase.name}' at epoch {self.state.epochs_done + 1}: "
                        f"train loss {train_loss}, {primary} {value}.",
                        fix="lower optimizer.lr (or the phase's lr), or train in fp32 (train.precision: fp32)",
                    )
                schedule.step_epoch(value)
                self.state.epochs_done += 1
                row: dict[str, Any] = {
                    "epoch": self.state.epochs_done,
                    "phase": phase.name,
                    "phase_epoch": epoch_in_phase + 1,
                    "train_loss": train_loss,
                    **{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                    **{f"lr_{g['group']}": g["lr"] for g in reversed(optimizer.param_groups)},
                    "train_images": seen,
                    "cached": train_cache is not None,
                    "train_seconds": train_seconds,
                    "seconds": time.perf_counter() - t0,
                }
                improved = self._improved(value)
                if improved:
                    self.state.best_metric, self.state.best_epoch, self.state.bad_epochs = value, self.state.epochs_done, 0
                else:
                    self.state.bad_epochs += 1
                self.state.history.append(row)
                self._print_epoch(row, primary)
                self.job.run.write_metrics(self.state.history)
                stop = self._should_stop()
                # The checkpoint names the next epoch to run, so resume lands exactly there.
                if stop or epoch_in_phase + 1 == phase.epochs:
                    self.state.next_phase, self.state.next_epoch_in_phase = index + 1, 0
                else:
                    self.state.next_epoch_in_phase = epoch_in_phase + 1
                self.state.phase_seconds[phase.name] = self.state.phase_seconds.get(phase.name, 0.0) + row["seconds"]
                self.state.elapsed_s = before + time.perf_counter() - started
                self._save(improved, optimizer, schedule, scaler)
                self._fire("visiontl_on_epoch_end", run=self.job.run, phase=phase, epoch=self.state.epochs_done, metrics=row)
                self.last_metrics = metrics
                if stop:
                    break
            report = audit.verify(self.model)
            self.audits.append(report.as_dict())
            self._fire("visiontl_on_phase_end", run=self.job.run, phase=phase, index=index, audit=report)
        if not hasattr(self, "last_metrics"):
            self.last_metrics = self._evaluate(None)
        from visiontl.freeze.modes import unlock_all

        unlock_all(self.model)
        return TrainResult(
            best_metric=float(self.state.best_metric if self.state.best_metric is not None else float("nan")),
            best_epoch=self.state.best_epoch,
            final_metrics=self.last_metrics,
            history=self.state.history,
            primary_metric=primary,
            timings={
                **{f"phase_{k}": v for k, v in self.state.phase_seconds.items()},
                **{f"feature_cache_{k}": v for k, v in self.cache_seconds.items()},
                # every part of a resumed run (up to each part's last checkpoint, then this one)
                "train_total": before + time.perf_counter() - started,
                **({"train_before_resume": before} if before else {}),
            },
            skipped=dict(self.state.skipped),
            extras={
                "audits": self.audits,
                "feature_cache": self.cache_notes,
                "device": str(self.device),
                "precision": self.precision,
                "world_size": self.ctx.world,
                **({"distillation": self.distiller.describe()} if self.distiller is not None else {}),
            },
        )

    def _fire(self, name: str, **kwargs: Any) -> None:
        # Events (loggers, callbacks) run on rank 0 only: one log per run.
        if self.ctx.is_main:
            self.job.fire(name, **kwargs)

    def _print_epoch(self, row: dict[str, Any], primary: str) -> None:
        # train.progress 'lines' (false) hides the bars only: the per-epoch lines are the
        # run's record on a terminal and in CI logs alike; 'none' hides them too.
        if self.recipe.train.progress == "none" or not self.ctx.is_main:
            return
        from tqdm.auto import tqdm

        total = self.job.plan.total_epochs
        val_loss = f" val_loss {row['val_loss']:.4f}" if "val_loss" in row else ""
        tqdm.write(
            f"epoch {row['epoch']:>3}/{total} [{row['phase']} {row['phase_epoch']}] train_loss {row['train_loss']:.4f}"
            f"{val_loss} {primary} {row[primary]:.4f}{' (cached)' if row['cached'] else ''} {row['seconds']:.1f}s"
        )

    def _should_stop(self) -> bool:
        patience = self.recipe.train.early_stopping.patience
        return patience is not None and self.state.bad_epochs >= patience
