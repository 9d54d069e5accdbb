"""Turning a strategy into phases: which groups train, at which learning rate, with which
BatchNorm policy. Pure data: no torch, so ``--dry-run`` and tests can plan without a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from visiontl.config.schema import LearningRate, PhaseSpec, StrategySection
from visiontl.contracts import LayerGroup
from visiontl.errors import ConfigError, FreezeError
from visiontl.ids import suggest

BN_MODES = {
    # (policy, group trains?) -> what the plan table shows
    ("freeze", True): "train",
    ("freeze", False): "eval (stats fixed)",
    ("train", True): "train",
    ("train", False): "train (affine + stats)",
    ("eval", True): "eval (stats fixed, affine trains)",
    ("eval", False): "eval (stats fixed)",
}


@dataclass(frozen=True)
class GroupSetting:
    """One group's state in one phase (a row of the dry-run table)."""

    name: str
    role: str
    params: int
    trainable: bool
    lr: float | None
    bn: str


@dataclass(frozen=True)
class Phase:
    """One phase of a plan.

    Attributes:
        name: ``head``, ``last2``, ``all``, or a custom name.
        epochs: epochs in the phase.
        trainable: names of the groups that train.
        lrs: learning rate of every group (frozen ones too: BN affine parameters of frozen
            groups use it under the ``train`` BN policy).
        bn: the BatchNorm policy (``freeze``, ``train``, ``eval``).
        settings: per-group rows for display.
        augmentation: the phase's augmentation preset, or ``None`` for the recipe's.
    """

    name: str
    epochs: int
    trainable: tuple[str, ...]
    lrs: dict[str, float]
    bn: str
    settings: tuple[GroupSetting, ...] = field(default=())
    augmentation: str | None = None

    @property
    def frozen(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.settings if not s.trainable)


@dataclass(frozen=True)
class Plan:
    """The phases of a run, in order."""

    strategy: str
    phases: tuple[Phase, ...]

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def locate(self, global_epoch: int) -> tuple[int, int]:
        """(phase index, 0-based epoch within the phase) of a 0-based global epoch."""
        start = 0
        for index, phase in enumerate(self.phases):
            if global_epoch < start + phase.epochs:
                return index, global_epoch - start
            start += phase.epochs
        raise IndexError(f"epoch {global_epoch} is past the plan's {self.total_epochs} epochs")

    def phase_start(self, index: int) -> int:
        """0-based global epoch at which phase ``index`` starts."""
        return sum(p.epochs for p in self.phases[:index])

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "phases": [asdict(p) for p in self.phases]}

    def table(self) -> str:
        """The dry-run table: per phase, group, parameters, trainable, learning rate, BN mode."""
        lines: list[str] = []
        for index, phase in enumerate(self.phases, 1):
            trainable = sum(s.params for s in phase.settings if s.trainable)
            total = sum(s.params for s in phase.settings)
            aug = f", augmentation '{phase.augmentation}'" if phase.augmentation else ""
            lines.append(
                f"Phase {index}/{len(self.phases)} '{phase.name}': {phase.epochs} epoch(s), "
                f"BN policy '{phase.bn}'{aug}, {trainable:,} of {total:,} parameters train"
            )
            width = max(5, *(len(s.name) for s in phase.settings))
            lines.append(f"  {'group':<{width}}  {'role':<5}  {'params':>12}  {'trainable':<9}  {'lr':>9}  bn")
            for s in phase.settings:
                lr = f"{s.lr:.2e}" if s.trainable and s.lr is not None else "-"
                lines.append(
                    f"  {s.name:<{width}}  {s.role:<5}  {s.params:>12,}  {'yes' if s.trainable else 'no':<9}  {lr:>9}  {s.bn}"
                )
        return "\n".join(lines)


def _bn_mode(policy: str, trains: bool, norm: str) -> str:
    if norm == "none":
        return "-"
    if norm == "frozen":
        return "frozen (FrozenBatchNorm2d)"
    return BN_MODES[(policy, trains)]


def resolve_lrs(spec: LearningRate, groups: Sequence[LayerGroup]) -> dict[str, float]:
    """Learning rate of every group from a recipe's ``lr`` value.

    * a number: the same rate for every group;
    * ``[low, high]``: geometric spread from the first group (``low``) towards the head;
      every head group gets ``high`` (fastai's ``slice(low, high)``);
    * ``{group: lr, default: lr}``: explicit rates; groups not named take ``default``.

    Raises:
        ConfigError: a map names an unknown group, or leaves a group without a rate.
    """
    names = [g.name for g in groups]
    if isinstance(spec, (int, float)):
        return {n: float(spec) for n in names}
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k != "default" and k not in names]
        if unknown:
            bad = unknown[0]
            close = suggest(bad, names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"optimizer.lr names group '{bad}', which this model does not have.{hint}",
                fix=f"use these groups: {', '.join(names)} (or 'default')",
            )
        missing = [n for n in names if n not in spec and "default" not in spec]
        if missing:
            raise ConfigError(
                f"optimizer.lr gives no rate for group(s) {', '.join(missing)}.",
                fix="add them or a 'default' entry to the lr map",
            )
        return {n: float(spec.get(n, spec.get("default", 0.0))) for n in names}
    low, high = float(spec[0]), float(spec[1])
    if low <= 0 or high <= 0:
        raise ConfigError(f"optimizer.lr [{low}, {high}] must be positive.")
    body = [g for g in groups if g.role != "head"]
    out: dict[str, float] = {}
    steps = len(body)
    for i, g in enumerate(body):
        out[g.name] = low * (high / low) ** (i / steps) if steps else high
    for g in groups:
        if g.role == "head":
            out[g.name] = high
    return out


def _trainable_for(spec: list[str] | int | str, groups: Sequence[LayerGroup]) -> tuple[str, ...]:
    names = [g.name for g in groups]
    heads = [g.name for g in groups if g.role == "head"]
    body = [g.name for g in groups if g.role != "head"]
    if spec == "all":
        return tuple(names)
    if spec == "head":
        return tuple(heads)
    if isinstance(spec, int):
        if spec < 0:
            raise ConfigError(f"A phase cannot train the last {spec} groups.")
        keep = set(body[len(body) - spec:] if spec else []) | set(heads)
        return tuple(n for n in names if n in keep)
    unknown = [n for n in spec if n not in names]
    if unknown:
        close = suggest(unknown[0], names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"A phase trains group '{unknown[0]}', which this model does not have.{hint}",
            fix=f"this model's groups: {', '.join(names)}",
        )
    return tuple(n for n in names if n in spec)


def _split_epochs(total: int, parts: int) -> list[int]:
    base = max(1, total // parts)
    epochs = [base] * parts
    epochs[-1] = max(1, total - base * (parts - 1))
    return epochs


def _make_phase(
    name: str,
    epochs: int,
    trainable: tuple[str, ...],
    lr: LearningRate,
    bn: str,
    groups: Sequence[LayerGroup],
    counts: Mapping[str, int],
    augmentation: str | None = None,
    norms: Mapping[str, str] | None = None,
) -> Phase:
    if not trainable:
        raise FreezeError(f"Phase '{name}' trains no group.", fix="name at least one group that trains")
    lrs = resolve_lrs(lr, groups)
    settings = tuple(
        GroupSetting(
            name=g.name,
            role=g.role,
            params=int(counts.get(g.name, 0)),
            trainable=g.name in trainable,
            lr=lrs[g.name],
            bn=_bn_mode(bn, g.name in trainable, (norms or {}).get(g.name, "batchnorm")),
        )
        for g in groups
    )
    return Phase(name=name, epochs=epochs, trainable=trainable, lrs=lrs, bn=bn, settings=settings, augmentation=augmentation)


def build_plan(
    groups: Sequence[LayerGroup],
    strategy: StrategySection,
    lr: LearningRate,
    epochs: int,
    counts: Mapping[str, int] | None = None,
    norms: Mapping[str, str] | None = None,
) -> Plan:
    """Plan the phases of a run.

    Args:
        groups: the model's ordered layer groups (from the plugin's ``visiontl_freeze``).
        strategy: the recipe's strategy section.
        lr: the recipe's ``optimizer.lr``.
        epochs: ``train.epochs`` (single-phase strategies; default progressive split).
        counts: parameters per group, for display.
        norms: per group ``batchnorm``, ``frozen`` or ``none`` (BN column of the table).

    Returns:
        A :class:`Plan`.

    Example:
        ``progressive`` with 5 body groups, ``unfreeze_last=2`` and epochs ``[2, 2, 3]`` gives
        phases ``head`` (2 epochs), ``last2`` (2 epochs), ``all`` (3 epochs).
    """
    if not any(g.role == "head" for g in groups):
        raise FreezeError("The model's layer groups have no 'head' group.", fix="the plugin must mark its head group(s)")
    counts = counts or {}
    bn = strategy.bn

    def _phase(*args: Any, **kwargs: Any) -> Phase:
        return _make_phase(*args, norms=norms, **kwargs)

    phases: list[Phase] = []
    if strategy.name == "feature_extraction":
        phases.append(_phase("head", epochs, _trainable_for("head", groups), lr, bn, groups, counts))
    elif strategy.name == "full":
        phases.append(_phase("all", epochs, _trainable_for("all", groups), lr, bn, groups, counts))
    elif strategy.name == "progressive":
        body = [g for g in groups if g.role != "head"]
        k = strategy.unfreeze_last
        specs: list[tuple[str, list[str] | int | str]] = [("head", "head")]
        if k < len(body):
            specs.append((f"last{k}", k))
        specs.append(("all", "all"))
        phase_epochs = strategy.phase_epochs or _split_epochs(epochs, len(specs))
        if len(phase_epochs) != len(specs):
            raise ConfigError(
                f"strategy.phase_epochs has {len(phase_epochs)} number(s) but the progressive plan "
                f"for this model has {len(specs)} phases ({', '.join(n for n, _ in specs)}).",
                fix=f"give {len(specs)} numbers, e.g. phase_epochs: {[1] * len(specs)}",
            )
        for (name, spec), n in zip(specs, phase_epochs, strict=True):
            aug = strategy.head_augmentation if spec == "head" else None
            phases.append(_phase(name, n, _trainable_for(spec, groups), lr, bn, groups, counts, aug))
    else:
        assert strategy.phases, "validated by the schema"
        for spec in strategy.phases:
            phases.append(_custom(spec, groups, lr, bn, counts, norms))
    return Plan(strategy=strategy.name, phases=tuple(phases))


def _custom(spec: PhaseSpec, groups: Sequence[LayerGroup], lr: LearningRate, bn: str, counts: Mapping[str, int], norms: Mapping[str, str] | None) -> Phase:
    return _make_phase(
        spec.name,
        spec.epochs,
        _trainable_for(spec.train, groups),
        spec.lr if spec.lr is not None else lr,
        spec.bn or bn,
        groups,
        counts,
        spec.augmentation,
        norms,
    )

