"""The expected cost of a search, for ``--dry-run``: seconds per epoch, per trial, in all.

An estimate, said to be one. The forward time of one image on this machine comes from the
latency model of the ``local`` target when ``visiontl select --calibrate`` has been run, else
from the ``server`` target's (a 4-core server CPU) scaled by the input size; a training image
costs about three forwards (forward, backward through the trained groups), a validation image
one, and a frozen backbone only its forward. Pruning makes the real total lower.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from visiontl.search.budget import Budget, format_seconds
from visiontl.search.space import SearchSpace

#: Fixed cost of a trial: process-level setup, building the model, writing the run directory.
TRIAL_OVERHEAD_S = 5.0
#: Training costs about this many forwards per image when the backbone trains.
TRAIN_FORWARDS = 3.0


@dataclass
class CostEstimate:
    """Per-candidate epoch seconds and what the budget buys.

    Attributes:
        epoch_s: candidate key -> estimated seconds of one epoch (all trained), ``None`` if unknown.
        trial_s: mean estimated seconds of one trial over the space.
        trials: trials the budget is expected to allow (a trial budget: itself).
        total_s: expected seconds in all (a time budget: itself).
        basis: where the per-image time comes from.
        notes: caveats.
    """

    epoch_s: dict[str, float | None]
    trial_s: float | None
    trials: int | None
    total_s: float | None
    basis: str
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"expected cost ({self.basis}):"]
        for key, seconds in self.epoch_s.items():
            out.append(f"  - {key}: {format_seconds(seconds) if seconds is not None else 'unknown (no MAC profile)'} per epoch (all groups training)")
        if self.trial_s is not None:
            out.append(f"  about {format_seconds(self.trial_s)} per trial before pruning")
        if self.trials is not None and self.total_s is not None:
            out.append(f"  about {self.trials} trial(s) in {format_seconds(self.total_s)} (fewer seconds, or more trials, with pruning)")
        out += [f"  note: {n}" for n in self.notes]
        return out


def _per_image_model() -> tuple[Any, str]:
    from visiontl.selection.targets import get_target, latency_model

    try:
        local = latency_model(get_target("local"))
    except Exception:  # noqa: BLE001 - no calibration yet: fall back to the server fit
        local = None
    if local is not None:
        return local, "this machine's calibrated latency model"
    return latency_model(get_target("server")), "the server target's latency model (run visiontl select --calibrate for this machine's)"


def estimate(space: SearchSpace, budget: Budget, train_images: int | None, val_images: int | None, workers: int = 1) -> CostEstimate:
    """Estimate the cost of ``space`` under ``budget`` with ``workers`` trials at a time."""
    model, basis = _per_image_model()
    notes: list[str] = []
    if train_images is None:
        notes.append("the number of images is unknown: the estimate assumes 1,000 training and 250 validation images")
    n_train = train_images if train_images is not None else 1000
    n_val = val_images if val_images is not None else max(1, n_train // 4)
    epoch_s: dict[str, float | None] = {}
    per_trial: list[float] = []
    size = sum(space.sizes) / len(space.sizes)
    for cand in space.candidates:
        ms = None
        if model is not None and cand.profile:
            from visiontl.cards import MacProfile

            ms = model.predict(MacProfile(**cand.profile))  # type: ignore[arg-type]  # stored as JSON numbers
        if ms is None:
            epoch_s[cand.key] = None
            continue
        scale = (size / (cand.card_size or size)) ** 2
        forward_s = ms * scale / 1000.0
        full = (TRAIN_FORWARDS * n_train + n_val) * forward_s
        head_only = (n_train + n_val) * forward_s
        epoch_s[cand.key] = full
        for strategy in space.strategies:
            epoch = head_only if strategy == "feature_extraction" else (head_only + 2 * full) / 3 if strategy == "progressive" else full
            per_trial.append(TRIAL_OVERHEAD_S + space.epochs * epoch)
    trial_s = sum(per_trial) / len(per_trial) if per_trial else None
    trials: int | None
    total: float | None
    if budget.trials is not None:
        trials = budget.trials
        total = trials * trial_s / workers if trial_s is not None else None
    else:
        total = budget.seconds
        trials = int(max(1, (budget.seconds or 0) * workers // trial_s)) if trial_s else None
    notes.append("batch-1 latency predictions are a rough guide to training time: measure with a 1-trial search")
    return CostEstimate(epoch_s, trial_s, trials, total, basis, notes)
