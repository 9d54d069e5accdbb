"""The freeze audit: proof that what a phase froze did not move.

Before a phase, every frozen parameter and every fixed BatchNorm buffer is hashed; after it,
they are hashed again. Any difference fails the run loudly, naming the tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from visiontl.errors import FreezeAuditError


def tensor_digest(tensor: torch.Tensor) -> str:
    """A content hash of a tensor's bytes (dtype-agnostic, bit-exact)."""
    data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
    return hashlib.blake2b(memoryview(data), digest_size=16).hexdigest()


@dataclass
class AuditReport:
    """The outcome of one phase's audit.

    Attributes:
        phase: the phase's name.
        params_checked: frozen parameters compared.
        buffers_checked: BatchNorm buffers compared.
        changed: names of tensors that changed (empty when the audit passes).
    """

    phase: str
    params_checked: int = 0
    buffers_checked: int = 0
    changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.changed

    def as_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "params_checked": self.params_checked,
            "buffers_checked": self.buffers_checked,
            "changed": list(self.changed),
            "ok": self.ok,
        }


class FreezeAudit:
    """Snapshot the frozen tensors of a phase, then verify them.

    Example:
        >>> audit = FreezeAudit.snapshot(model, applied.frozen_params, applied.stat_buffers, "head")  # doctest: +SKIP
        >>> ...  # train
        >>> report = audit.verify(model)  # raises FreezeAuditError on any change  # doctest: +SKIP
    """

    def __init__(self, phase: str, params: dict[str, str], buffers: dict[str, str]) -> None:
        self.phase = phase
        self.params = params
        self.buffers = buffers

    @classmethod
    def snapshot(
        cls, model: nn.Module, frozen_params: Iterable[str], stat_buffers: Iterable[str], phase: str
    ) -> FreezeAudit:
        named_params = dict(model.named_parameters())
        named_buffers = dict(model.named_buffers())
        return cls(
            phase,
            {n: tensor_digest(named_params[n]) for n in frozen_params},
            {n: tensor_digest(named_buffers[n]) for n in stat_buffers if n in named_buffers},
        )

    def verify(self, model: nn.Module, raise_on_change: bool = True) -> AuditReport:
        """Compare the current tensors with the snapshot.

        Raises:
            FreezeAuditError: when ``raise_on_change`` and anything changed.
        """
        named_params = dict(model.named_parameters())
        named_buffers = dict(model.named_buffers())
        changed = [n for n, d in self.params.items() if tensor_digest(named_params[n]) != d]
        changed += [n for n, d in self.buffers.items() if tensor_digest(named_buffers[n]) != d]
        report = AuditReport(self.phase, len(self.params), len(self.buffers), changed)
        if changed and raise_on_change:
            more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            raise FreezeAuditError(
                f"Freeze audit failed after phase '{self.phase}': {len(changed)} frozen tensor(s) "
                f"changed: {', '.join(changed[:5])}{more}.",
                fix="something outside the freezing engine updated frozen weights or BatchNorm "
                "statistics (a custom callback, a trainer that re-enables gradients); report it",
            )
        return report
