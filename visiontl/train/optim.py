"""Optimizers and learning-rate schedules, rebuilt at every phase boundary.

A schedule always covers exactly one phase: it warms up and decays within the phase and
restarts cleanly at the next one, where the set of trainable groups changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from visiontl.config.schema import OptimizerSection, SchedulerSection


def build_optimizer(param_groups: list[dict[str, Any]], section: OptimizerSection) -> torch.optim.Optimizer:
    """AdamW or SGD over the phase's parameter groups (their own lr and weight decay)."""
    if section.name == "sgd":
        return torch.optim.SGD(param_groups, lr=param_groups[0]["lr"], momentum=section.momentum, nesterov=section.nesterov and section.momentum > 0)
    return torch.optim.AdamW(param_groups, lr=param_groups[0]["lr"], betas=section.betas)


@dataclass
class Schedule:
    """A scheduler and when it steps: after every ``batch``, every ``epoch``, or on the
    validation metric (``plateau``)."""

    scheduler: Any
    unit: str

    def state_dict(self) -> dict[str, Any] | None:
        return self.scheduler.state_dict() if self.scheduler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scheduler is not None and state is not None:
            self.scheduler.load_state_dict(state)

    def step_batch(self) -> None:
        if self.unit == "batch":
            self.scheduler.step()

    def step_epoch(self, metric: float | None) -> None:
        if self.unit == "plateau" and metric is not None:
            self.scheduler.step(metric)
        elif self.unit == "epoch":
            self.scheduler.step()


def _warmup_cosine(warmup: int, total: int, floor: float) -> Any:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def build_schedule(
    optimizer: torch.optim.Optimizer,
    section: SchedulerSection,
    steps_per_epoch: int,
    epochs: int,
    higher_is_better: bool,
) -> Schedule:
    """The schedule for one phase of ``epochs`` epochs of ``steps_per_epoch`` batches."""
    steps_per_epoch = max(1, steps_per_epoch)
    total = steps_per_epoch * epochs
    if section.name == "none":
        return Schedule(None, "none")
    if section.name == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total, pct_start=section.pct_start
        )
        return Schedule(sched, "batch")
    if section.name == "cosine":
        warmup = round(section.warmup_epochs * steps_per_epoch)
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(warmup, total, section.min_lr_ratio))
        return Schedule(sched, "batch")
    if section.name == "cosine_restarts":
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=section.restart_epochs * steps_per_epoch, T_mult=section.restart_mult
        )
        return Schedule(sched, "batch")
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max" if higher_is_better else "min", factor=section.factor, patience=section.patience
    )
    return Schedule(sched, "plateau")
