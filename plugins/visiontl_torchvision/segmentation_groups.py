"""Layer groups of torchvision's stock segmentation models.

The backbone of ``deeplabv3_resnet50`` is ResNet-50's body and that of
``lraspp_mobilenet_v3_large`` MobileNetV3-Large's ``features`` (dilated in its last stages,
which changes strides but not names), so the backbone's groups are exactly the classifier's
(``stem``, ``stage1..N``, ``final_conv``), read from the classifier built on the meta device
(no memory, no weights) and renamed onto ``backbone.``. Then ``head`` (the ``classifier``:
ASPP or FCN/LR-ASPP head, new for the user's classes) and ``aux`` (the auxiliary classifier,
when kept), both with role ``head``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visiontl.contracts import LayerGroup
from visiontl.errors import FreezeError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def stock_groups(model: nn.Module, classifier: str) -> list[LayerGroup]:
    """Groups of a wrapped stock model whose backbone is the body of ``classifier``.

    Raises:
        FreezeError: a parameter falls in no group.
    """
    import torch
    import torchvision

    from visiontl_torchvision.groups import classification_groups

    with torch.device("meta"):
        reference = torchvision.models.get_model(classifier, weights=None)
    own = [n for n, _ in model.named_parameters()]
    present = set(own)
    groups: list[LayerGroup] = []
    for g in classification_groups(reference):
        if g.role == "head":
            continue
        names = []
        for p in g.params:
            for candidate in (f"backbone.{p}", "backbone." + p.removeprefix("features.")):
                if candidate in present:
                    names.append(candidate)
                    break
        if names:
            groups.append(LayerGroup(g.name, g.role, tuple(names)))
    for prefix, group in (("classifier.", "head"), ("aux_classifier.", "aux")):
        names = [n for n in own if n.startswith(prefix)]
        if names:
            groups.append(LayerGroup(group, "head", tuple(names)))
    covered = {p for g in groups for p in g.params}
    missing = [n for n in own if n not in covered]
    if missing:
        raise FreezeError(f"Parameters of the {classifier} segmentation model in no group: {', '.join(missing[:3])}.")
    return groups
