"""Layer groups of a timm model from its own ``group_matcher``."""

from __future__ import annotations

from typing import Any

from visiontl.contracts import LayerGroup
from visiontl.errors import FreezeError


def timm_groups(model: Any) -> list[LayerGroup]:
    """``stem``, ``stage1`` .. ``stageN``, ``head`` from timm's coarse group matcher.

    timm numbers the groups in forward order and puts parameters no pattern matches (the
    classifier, and whatever ``forward_head`` uses) last: that last group is the head. The
    classifier's parameters are checked to be in it.
    """
    from timm.models import group_parameters

    try:
        matcher = model.group_matcher(coarse=True)
    except (AttributeError, NotImplementedError):
        matcher = None
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    head_params = set()
    if classifier is not None and hasattr(classifier, "named_parameters"):
        ids = {id(p) for p in classifier.parameters()}
        head_params = {n for n, p in model.named_parameters() if id(p) in ids}
    if matcher is None:
        names = [n for n, _ in model.named_parameters()]
        body = tuple(n for n in names if n not in head_params)
        return [LayerGroup("body", "stage", body), LayerGroup("head", "head", tuple(n for n in names if n in head_params))]
    grouped = group_parameters(model, matcher)
    ordered = [tuple(params) for _, params in sorted(grouped.items())]
    if not ordered:
        raise FreezeError(f"timm's group_matcher gave no groups for {type(model).__name__}.")
    if head_params and not head_params <= set(ordered[-1]):
        # The classifier landed in a middle group: split it out so it can train alone.
        ordered = [tuple(p for p in g if p not in head_params) for g in ordered]
        ordered = [g for g in ordered if g] + [tuple(n for n, _ in model.named_parameters() if n in head_params)]
    has_stem = isinstance(matcher, dict) and "stem" in matcher
    groups: list[LayerGroup] = []
    stage = 0
    for i, params in enumerate(ordered):
        if i == len(ordered) - 1:
            groups.append(LayerGroup("head", "head", params))
        elif i == 0 and has_stem:
            groups.append(LayerGroup("stem", "stem", params))
        else:
            stage += 1
            groups.append(LayerGroup(f"stage{stage}", "stage", params))
    return groups
