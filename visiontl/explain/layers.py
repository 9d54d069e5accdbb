"""Which layer a CAM looks at: chosen from the model's named layer groups, not per architecture.

Every plugin already describes its models as ordered groups (``stem, stage1..N, neck, head``)
for the freezing engine. The CAM's default target is the output of the *last group whose
role is ``stage``* (the last feature-extraction stage before the neck and head): a module
whose output is a spatial feature map in every family served (the last ResNet layer, the last
SqueezeNet fire, a detector's last backbone stage, a segmenter's last encoder stage). A user
may name another group (``stage3``) or any module path instead.

A group is a set of parameters; its *output module* is the last of its maximal modules (the
largest modules all of whose parameters belong to the group), in registration order, which
is execution order for the sequential backbones of every family served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from visiontl.errors import ConfigError
from visiontl.ids import suggest

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl.contracts import LayerGroup


@dataclass(frozen=True)
class TargetLayer:
    """The module a CAM hooks, and how it was chosen.

    Attributes:
        module: the ``nn.Module`` whose output is the feature map.
        path: its qualified name in the model (``""`` for the model itself).
        group: the layer group it ends, or ``None`` when named by module path.
    """

    module: nn.Module
    path: str
    group: str | None

    def describe(self) -> str:
        """``stage4 (layer4)`` or ``module backbone.body.layer3``."""
        return f"{self.group} ({self.path})" if self.group else f"module {self.path}"


def default_group(groups: Sequence[LayerGroup]) -> LayerGroup:
    """The last group whose role is ``stage`` (else the last group that is not a head).

    Raises:
        ConfigError: every group is a head (nothing to look at before the head).
    """
    stages = [g for g in groups if g.role == "stage"]
    if stages:
        return stages[-1]
    body = [g for g in groups if g.role != "head"]
    if not body:
        raise ConfigError(
            f"The model's layer groups are all heads ({', '.join(g.name for g in groups)}): no feature stage to explain.",
            fix="pass --layer with a module path whose output is a feature map",
        )
    return body[-1]


def group_output_module(model: nn.Module, group: LayerGroup) -> tuple[str, nn.Module]:
    """``(path, module)`` of the module that produces ``group``'s output.

    The candidates are the group's maximal modules: modules with parameters, all of them in
    the group, whose parent is not such a module. The last candidate in registration order is
    the one whose output leaves the group.

    Raises:
        ConfigError: no module lies entirely inside the group (its parameters are spread over
            modules shared with other groups).
    """
    members = set(group.params)
    inside: dict[str, bool] = {}
    for name, module in model.named_modules():
        names = [f"{name}.{p}" if name else p for p, _ in module.named_parameters()]
        inside[name] = bool(names) and all(n in members for n in names)
    candidates: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not inside[name]:
            continue
        parent = name.rpartition(".")[0] if name else None
        if parent is not None and inside.get(parent, False):
            continue
        candidates.append((name, module))
    if not candidates:
        raise ConfigError(
            f"No module lies entirely inside layer group '{group.name}', so its output cannot be hooked.",
            fix="pass --layer with a module path (see model.named_modules())",
        )
    return candidates[-1]


def resolve_target_layer(model: nn.Module, groups: Sequence[LayerGroup], layer: str | None = None) -> TargetLayer:
    """The CAM's target: ``layer`` (a group name or a module path) or the default group's output.

    Args:
        model: the model the groups describe.
        groups: its ordered layer groups (``visiontl_freeze``).
        layer: a group name (``stage3``), a module path (``backbone.body.layer3``), or ``None``
            for :func:`default_group`.

    Raises:
        ConfigError: ``layer`` is neither a group nor a module of the model.

    Example:
        >>> target = resolve_target_layer(model, groups)  # doctest: +SKIP
        >>> target.describe()  # doctest: +SKIP
        'stage4 (layer4)'
    """
    by_name = {g.name: g for g in groups}
    if layer is None:
        group = default_group(groups)
    elif layer in by_name:
        group = by_name[layer]
    else:
        modules = dict(model.named_modules())
        if layer in modules and layer != "":
            return TargetLayer(modules[layer], layer, None)
        close = suggest(layer, [*by_name, *modules], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"'{layer}' is neither a layer group nor a module of the model.{hint} Groups: {', '.join(by_name)}.",
            fix="name a group (see: visiontl run RECIPE --dry-run) or a module path from model.named_modules()",
        )
    path, module = group_output_module(model, group)
    return TargetLayer(module, path, group.name)


def fallback_layers(model: nn.Module, groups: Sequence[LayerGroup]) -> list[TargetLayer]:
    """The output modules of the stage groups before the default one, nearest first (one):
    used when no gradient reaches the default layer's positions, as in vision transformers
    whose head reads the class token only."""
    stages = [g for g in groups if g.role == "stage"]
    out: list[TargetLayer] = []
    for group in reversed(stages[:-1][-1:]):
        path, module = group_output_module(model, group)
        out.append(TargetLayer(module, path, group.name))
    return out
