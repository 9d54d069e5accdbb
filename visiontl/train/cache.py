"""Feature caching for head-only phases.

When a phase trains only the head, with deterministic preprocessing and the frozen part held
in eval mode, the backbone computes the same features for an image at every epoch. They are
computed once per phase and the head trains on them: the same batches, the same order, the
same results to float tolerance, at a fraction of the cost.

The cache is trusted only after checks on a real batch: the features need no gradient (no
trainable parameter takes part), they are deterministic, and ``head(features(x))`` equals
``model(x)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from visiontl.contracts import FeatureSplit
from visiontl.tasks.base import Batch, TaskAdapter

#: Largest cache (train + val) kept in memory, in GiB; above it the phase runs uncached.
MAX_CACHE_GB = float(os.environ.get("VISIONTL_CACHE_MAX_GB", "4"))


@dataclass
class CacheDecision:
    use: bool
    reason: str


def cache_preconditions(
    split: FeatureSplit | None,
    task: TaskAdapter,
    deterministic_inputs: bool,
    bn_policy: str,
    mode: str,
) -> CacheDecision:
    """Whether caching may be tried for a phase (before any tensor is looked at)."""
    if mode == "off":
        return CacheDecision(False, "train.cache_features is off")
    if split is None:
        return CacheDecision(False, "the model has no features/head split")
    if type(task).forward_train is not TaskAdapter.forward_train:
        return CacheDecision(False, f"task '{task.name}' has its own training forward")
    if not deterministic_inputs:
        return CacheDecision(False, "training augmentation is random (augmentation.preset is not 'none', or mixup/cutmix is on)")
    if bn_policy == "train":
        return CacheDecision(False, "BN policy 'train' updates statistics in frozen groups")
    return CacheDecision(True, "head-only phase with deterministic inputs")


def verify_split(model: nn.Module, split: FeatureSplit, inputs: torch.Tensor, autocast: Callable[[], Any]) -> CacheDecision:
    """Check the split on a real batch; the model is left in train mode, its buffers as found."""
    saved = {n: b.detach().clone() for n, b in model.named_buffers()}
    try:
        return _verify_split(model, split, inputs, autocast)
    finally:
        # The checks run forwards in train mode; undo any statistics they touched.
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(saved[name])
        model.train()


def _verify_split(model: nn.Module, split: FeatureSplit, inputs: torch.Tensor, autocast: Callable[[], Any]) -> CacheDecision:
    model.train()
    with autocast():
        feats = split.features(inputs)
    if feats.requires_grad:
        return CacheDecision(False, "a trainable parameter takes part in the features")
    with torch.no_grad(), autocast():
        again = split.features(inputs)
    if not torch.equal(feats, again):
        return CacheDecision(False, "the features are not deterministic in train mode (dropout or drop-path outside the head?)")
    model.eval()
    with torch.no_grad(), autocast():
        direct = model(inputs).float()
        via = split.head(split.features(inputs)).float()
    if direct.shape != via.shape and direct.numel() == via.numel():
        via = via.reshape(direct.shape)
    tol = 1e-4 if feats.dtype == torch.float32 else 2e-2
    if direct.shape != via.shape or not torch.allclose(direct, via, rtol=tol, atol=tol):
        return CacheDecision(False, "head(features(x)) differs from model(x)")
    return CacheDecision(True, "verified on the first batch")


class FeatureCache:
    """Features of every item of a dataset, keyed by dataset index."""

    def __init__(self, features: dict[int, torch.Tensor], targets: dict[int, Any]) -> None:
        self.features = features
        self.targets = targets

    @classmethod
    def build(
        cls,
        split: FeatureSplit,
        batches: Iterable[Batch],
        move: Callable[[Batch], Batch],
        autocast: Callable[[], Any],
        on_skipped: Callable[[dict[str, str]], None],
    ) -> FeatureCache:
        features: dict[int, torch.Tensor] = {}
        targets: dict[int, Any] = {}
        with torch.no_grad():
            for batch in batches:
                on_skipped(batch.skipped)
                if not len(batch):
                    continue
                batch = move(batch)
                with autocast():
                    feats = split.features(batch.inputs)
                for j, idx in enumerate(batch.indices):
                    features[idx] = feats[j].detach().cpu()
                    targets[idx] = batch.targets[j].detach().cpu()
        return cls(features, targets)

    def batch(self, indices: Iterable[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[int]] | None:
        """Stack the cached items among ``indices`` (unreadable ones are absent)."""
        present = [i for i in indices if i in self.features]
        if not present:
            return None
        feats = torch.stack([self.features[i] for i in present]).to(device)
        targets = torch.stack([self.targets[i] for i in present]).to(device)
        return feats, targets, present


def estimate_gb(sample_features: torch.Tensor, items: int) -> float:
    """Memory of caching ``items`` feature tensors like ``sample_features[0]``."""
    per_item = sample_features[0].numel() * sample_features.element_size()
    return per_item * items / 1024**3
