"""Semantic segmentation losses: cross-entropy, Dice, Focal and weighted sums of them.

Every loss takes logits ``[B, C, H, W]`` and integer labels ``[B, H, W]``, leaves pixels
labelled ``ignore_index`` out entirely, accepts per-class weights, and returns ``0`` (with a
gradient path) rather than ``nan`` for a batch whose pixels are all ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError
from visiontl.ids import suggest

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Loss names a recipe may use (``loss.name`` or the keys of ``loss.terms``); ``ce`` is an alias.
LOSS_NAMES = ("cross_entropy", "dice", "focal")
_ALIASES = {"ce": "cross_entropy", "crossentropy": "cross_entropy", "auto": "cross_entropy"}

#: Weight of torchvision's auxiliary classifier output in the loss (its reference scripts use 0.5).
AUX_WEIGHT = 0.5


def canonical_name(name: str) -> str:
    """``ce``/``auto`` -> ``cross_entropy``; unknown names raise with the nearest valid one.

    Raises:
        ConfigError: the name is not a segmentation loss.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LOSS_NAMES:
        close = suggest(name, [*LOSS_NAMES, *_ALIASES], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"'{name}' is not a segmentation loss.{hint}",
            fix=f"use loss.name or loss.terms with: {', '.join(LOSS_NAMES)} (auto = cross_entropy)",
        )
    return key


def _zero(logits: torch.Tensor) -> torch.Tensor:
    # Keeps the graph connected (backward works) when there is nothing to learn from.
    return logits.sum() * 0.0


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Pixel-wise cross-entropy, averaged over non-ignored pixels (weighted mean with ``weight``)."""
    import torch.nn.functional as F

    if not bool((target != ignore_index).any()):
        return _zero(logits)
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)


def _valid_one_hot(target: torch.Tensor, num_classes: int, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch.nn.functional as F

    valid = target != ignore_index
    safe = target.masked_fill(~valid, 0)
    if bool(((safe < 0) | (safe >= num_classes)).any()):
        raise ValueError(f"labels outside 0..{num_classes - 1} that are not ignore_index {ignore_index}")
    one_hot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float() * valid.unsqueeze(1)
    return one_hot, valid


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
    smooth: float = 1.0,
) -> torch.Tensor:
    """Soft multi-class Dice loss: ``1 - mean_c (2|P_c ∩ T_c| + s) / (|P_c| + |T_c| + s)``.

    Sums run over the batch's non-ignored pixels; the mean runs over the classes labelled in the
    batch (weighted by ``weight`` if given), so absent classes neither reward nor punish.
    """
    import torch

    probs = torch.softmax(logits.float(), dim=1)
    one_hot, valid = _valid_one_hot(target, logits.shape[1], ignore_index)
    probs = probs * valid.unsqueeze(1)
    dims = (0, 2, 3)
    inter = (probs * one_hot).sum(dims)
    card = probs.sum(dims) + one_hot.sum(dims)
    dice = (2 * inter + smooth) / (card + smooth)
    present = one_hot.sum(dims) > 0
    if not bool(present.any()):
        return _zero(logits)
    w = present.float() if weight is None else present.float() * weight.to(dice.device, dice.dtype)
    return 1.0 - (dice * w).sum() / w.sum().clamp_min(1e-12)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Focal loss ``-(1 - p_t)^gamma log p_t`` (Lin et al. 2017), averaged like cross-entropy.

    With ``gamma = 0`` it equals :func:`cross_entropy` (same class weighting: a weighted mean
    over non-ignored pixels).
    """
    import torch

    valid = target != ignore_index
    if not bool(valid.any()):
        return _zero(logits)
    log_probs = torch.log_softmax(logits.float(), dim=1)
    safe = target.masked_fill(~valid, 0)
    log_pt = log_probs.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -((1.0 - log_pt.exp()).clamp_min(0.0) ** gamma) * log_pt
    w = valid.float()
    if weight is not None:
        w = w * weight.to(loss.device, loss.dtype)[safe]
    return (loss * w).sum() / w.sum().clamp_min(1e-12)


class SegmentationLoss:
    """A weighted sum of segmentation losses, callable as ``loss(outputs, targets)``.

    ``outputs`` are logits ``[B, C, h, w]`` (resized to the labels' size when they differ), or a
    mapping ``{"out": logits, "aux": logits}`` from models with an auxiliary classifier, whose
    auxiliary term is added with weight :data:`AUX_WEIGHT`. ``targets`` are labels
    ``[B, H, W]``, or a list of ``[H_i, W_i]`` labels (one per image, sizes may differ).

    Args:
        terms: ``(name, weight)`` pairs (names from :data:`LOSS_NAMES`).
        ignore_index: label value left out.
        class_weights: per-class weights ``[C]`` or ``None``.
        label_smoothing: cross-entropy label smoothing.
        focal_gamma: focal loss focusing parameter.
    """

    def __init__(
        self,
        terms: Sequence[tuple[str, float]],
        *,
        ignore_index: int = 255,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        focal_gamma: float = 2.0,
    ) -> None:
        if not terms:
            raise ConfigError("loss.terms is empty.", fix="give at least one term, e.g. {cross_entropy: 1.0}")
        self.terms = [(canonical_name(n), float(w)) for n, w in terms]
        self.ignore_index = ignore_index
        self.class_weights = class_weights
        self.label_smoothing = label_smoothing
        self.focal_gamma = focal_gamma

    def __repr__(self) -> str:
        return " + ".join(f"{w:g}*{n}" for n, w in self.terms)

    def _weights(self, device: Any) -> torch.Tensor | None:
        if self.class_weights is not None and self.class_weights.device != device:
            self.class_weights = self.class_weights.to(device)
        return self.class_weights

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The weighted sum for one logits tensor against labels of its batch."""
        import torch.nn.functional as F

        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        weight = self._weights(logits.device)
        total = None
        for name, w in self.terms:
            if name == "cross_entropy":
                value = cross_entropy(logits, target, weight=weight, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing)
            elif name == "dice":
                value = dice_loss(logits, target, weight=weight, ignore_index=self.ignore_index)
            else:
                value = focal_loss(logits, target, gamma=self.focal_gamma, weight=weight, ignore_index=self.ignore_index)
            total = w * value if total is None else total + w * value
        assert total is not None
        return total

    def _per_target(self, logits: Any, targets: Any) -> torch.Tensor:
        if isinstance(targets, (list, tuple)):
            items = logits if isinstance(logits, (list, tuple)) else list(logits.unbind(0))
            losses = [self.single(lg.unsqueeze(0), t.unsqueeze(0)) for lg, t in zip(items, targets, strict=True)]
            return sum(losses[1:], losses[0]) / len(losses)
        return self.single(logits, targets)

    def __call__(self, outputs: Any, targets: Any) -> torch.Tensor:
        if isinstance(outputs, Mapping):
            loss = self._per_target(outputs["out"], targets)
            if outputs.get("aux") is not None:
                loss = loss + AUX_WEIGHT * self._per_target(outputs["aux"], targets)
            return loss
        return self._per_target(outputs, targets)


def loss_terms(name: str, terms: Mapping[str, float] | None) -> list[tuple[str, float]]:
    """The ``(name, weight)`` terms of a recipe's loss section (``terms`` wins over ``name``)."""
    if terms:
        out = [(canonical_name(n), float(w)) for n, w in terms.items()]
        if any(w < 0 for _, w in out):
            raise ConfigError("loss.terms weights must be >= 0.", fix="e.g. {cross_entropy: 1.0, dice: 0.5}")
        return out
    return [(canonical_name(name), 1.0)]
