"""Helpers for plugins describing layer groups (the engine itself lives in apply/plan)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from visiontl.contracts import GroupRole, LayerGroup
from visiontl.errors import FreezeError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def _under(param: str, prefix: str) -> bool:
    return param == prefix or param.startswith(prefix + ".") or prefix == ""


def groups_by_prefix(
    model: nn.Module,
    spec: Sequence[tuple[str, GroupRole, Sequence[str]]],
    rest: str | None = None,
) -> list[LayerGroup]:
    """Group parameters by module-name prefixes.

    Args:
        model: the model.
        spec: ``(group name, role, [module prefixes])`` in input-to-output order. A
            parameter goes to the first group with a matching prefix.
        rest: name of a group in ``spec`` that takes every unmatched parameter; ``None``
            makes unmatched parameters an error.

    Example:
        >>> groups_by_prefix(model, [("stem", "stem", ["conv1", "bn1"]),
        ...                          ("stage1", "stage", ["layer1"]),
        ...                          ("head", "head", ["fc"])])  # doctest: +SKIP
    """
    members: dict[str, list[str]] = {name: [] for name, _, _ in spec}
    unmatched: list[str] = []
    for pname, _ in model.named_parameters():
        for name, _, prefixes in spec:
            if any(_under(pname, pre) for pre in prefixes):
                members[name].append(pname)
                break
        else:
            unmatched.append(pname)
    if unmatched:
        if rest is None:
            raise FreezeError(f"Parameters matched by no group prefix: {', '.join(unmatched[:3])}.")
        members[rest].extend(unmatched)
    return [LayerGroup(name, role, tuple(members[name])) for name, role, _ in spec if members[name]]
