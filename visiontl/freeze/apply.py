"""Applying a phase to a model: ``requires_grad``, eval locks, optimizer parameter groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from visiontl.contracts import LayerGroup
from visiontl.errors import FreezeError
from visiontl.freeze.modes import lock_eval, unlock_all
from visiontl.freeze.plan import Phase

# Normalisation layers whose running statistics the BN policy governs. torchvision's
# FrozenBatchNorm2d has no parameters and no train mode: it is already frozen.
_BN_TYPES: tuple[type, ...] = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)


def is_batchnorm(module: nn.Module) -> bool:
    """A normalisation layer with running statistics (BatchNorm1d/2d/3d, SyncBatchNorm)."""
    return isinstance(module, _BN_TYPES)


def is_frozen_batchnorm(module: nn.Module) -> bool:
    """torchvision's FrozenBatchNorm2d (statistics and affine stored as buffers)."""
    return type(module).__name__ == "FrozenBatchNorm2d"


def check_groups(model: nn.Module, groups: Sequence[LayerGroup]) -> None:
    """Verify that ``groups`` cover every parameter of ``model`` exactly once.

    Raises:
        FreezeError: naming duplicated, unknown or uncovered parameters.
    """
    names = [n for n, _ in model.named_parameters()]
    known = set(names)
    seen: dict[str, str] = {}
    for group in groups:
        if not group.params:
            raise FreezeError(f"Layer group '{group.name}' has no parameters.")
        for p in group.params:
            if p not in known:
                raise FreezeError(f"Layer group '{group.name}' names parameter '{p}', which the model does not have.")
            if p in seen:
                raise FreezeError(f"Parameter '{p}' is in both groups '{seen[p]}' and '{group.name}'.")
            seen[p] = group.name
    uncovered = [n for n in names if n not in seen]
    if uncovered:
        more = f" and {len(uncovered) - 3} more" if len(uncovered) > 3 else ""
        raise FreezeError(f"Parameters not in any layer group: {', '.join(uncovered[:3])}{more}.")
    if len({g.name for g in groups}) != len(groups):
        raise FreezeError("Two layer groups share a name.")


def group_norm_kinds(model: nn.Module, groups: Sequence[LayerGroup]) -> dict[str, str]:
    """Per group: ``batchnorm`` (has BatchNorm layers), ``frozen`` (only torchvision
    FrozenBatchNorm2d) or ``none``, for the plan table's BN column."""
    owner: dict[str, str] = {}
    for g in groups:
        for p in g.params:
            owner[p.rsplit(".", 1)[0] if "." in p else ""] = g.name
    kinds = {g.name: "none" for g in groups}
    for name, module in model.named_modules():
        if is_batchnorm(module) and name in owner:
            kinds[owner[name]] = "batchnorm"
        elif is_frozen_batchnorm(module):
            # No parameters of its own: it belongs with the closest parameterised module.
            best = max(owner, key=lambda m: len(_common_prefix(m, name)), default=None)
            if best is not None and kinds[owner[best]] == "none":
                kinds[owner[best]] = "frozen"
    return kinds


def _common_prefix(a: str, b: str) -> str:
    out = []
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x != y:
            break
        out.append(x)
    return ".".join(out)


def group_param_counts(model: nn.Module, groups: Sequence[LayerGroup]) -> dict[str, int]:
    """Number of scalar parameters per group."""
    params = dict(model.named_parameters())
    return {g.name: sum(params[p].numel() for p in g.params) for g in groups}


@dataclass
class AppliedPhase:
    """What applying a phase did.

    Attributes:
        param_groups: optimizer parameter groups, one per (layer group, decay/no-decay),
            each with ``group`` (layer-group name), ``lr`` and ``weight_decay``.
        frozen_params: names of the parameters that must not change in this phase.
        locked_modules: names of the modules held in eval mode.
        stat_buffers: names of the BatchNorm buffers that must not change in this phase.
    """

    param_groups: list[dict[str, Any]]
    frozen_params: list[str]
    locked_modules: list[str] = field(default_factory=list)
    stat_buffers: list[str] = field(default_factory=list)

    @property
    def trainable_count(self) -> int:
        return sum(p.numel() for g in self.param_groups for p in g["params"])


def _maximal_frozen_modules(model: nn.Module, frozen: set[str]) -> list[str]:
    """Names of the largest modules whose every parameter is frozen (and which have some)."""
    out: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        names = [f"{prefix}{n}" for n, _ in module.named_parameters()]
        if names and all(n in frozen for n in names) and prefix:
            out.append(prefix.rstrip("."))
            return
        for child_name, child in module.named_children():
            visit(f"{prefix}{child_name}.", child)

    visit("", model)
    return out


def apply_phase(
    model: nn.Module,
    groups: Sequence[LayerGroup],
    phase: Phase,
    weight_decay: float = 0.0,
) -> AppliedPhase:
    """Set the model up for ``phase``.

    * parameters of trainable groups get ``requires_grad=True``, the others ``False``;
    * ``bn: freeze``: every module whose parameters are all frozen is locked in eval mode
      (BatchNorm statistics fixed, dropout and drop-path off) through ``model.train()``;
    * ``bn: train``: nothing is locked, and BatchNorm affine parameters of frozen groups train
      at their group's learning rate (fastai's ``train_bn``);
    * ``bn: eval``: as ``freeze``, and every BatchNorm layer everywhere is locked too.

    Weight decay is not applied to biases and normalisation weights (1-D tensors).

    Returns:
        :class:`AppliedPhase` with the optimizer's parameter groups and what the audit checks.
    """
    check_groups(model, groups)
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    group_of = {p: g.name for g in groups for p in g.params}
    trainable_groups = set(phase.trainable)

    bn_param_names: set[str] = set()
    if phase.bn == "train":
        for mname, module in modules.items():
            if is_batchnorm(module):
                prefix = f"{mname}." if mname else ""
                bn_param_names.update(f"{prefix}{n}" for n, _ in module.named_parameters(recurse=False))

    trains: dict[str, bool] = {}
    for name in params:
        trains[name] = group_of[name] in trainable_groups or name in bn_param_names
        params[name].requires_grad_(trains[name])
    frozen = {n for n, t in trains.items() if not t}

    unlock_all(model)
    locked: list[str] = []
    if phase.bn in ("freeze", "eval"):
        locked = _maximal_frozen_modules(model, frozen)
    if phase.bn == "eval":
        inside = tuple(f"{m}." for m in locked)
        locked += [n for n, m in modules.items() if is_batchnorm(m) and n not in locked and not n.startswith(inside)]
    for name in locked:
        lock_eval(modules[name])

    locked_prefixes = tuple(f"{m}." for m in locked)
    stat_buffers = [
        f"{mname}.{bname}"
        for mname, module in modules.items()
        if (is_batchnorm(module) and (mname in locked or mname.startswith(locked_prefixes)))
        or is_frozen_batchnorm(module)  # its buffers never change, in any phase
        for bname, _ in module.named_buffers(recurse=False)
    ]

    param_groups: list[dict[str, Any]] = []
    for group in groups:
        members = [p for p in group.params if trains[p]]
        if not members:
            continue
        lr = phase.lrs[group.name]
        decay = [params[p] for p in members if params[p].ndim > 1]
        no_decay = [params[p] for p in members if params[p].ndim <= 1]
        for plist, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if plist:
                param_groups.append({"params": plist, "lr": lr, "weight_decay": wd, "group": group.name})
    return AppliedPhase(
        param_groups=param_groups,
        frozen_params=sorted(frozen),
        locked_modules=locked,
        stat_buffers=stat_buffers,
    )
