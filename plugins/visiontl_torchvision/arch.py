"""Which torchvision architecture a model is: the key the per-family tables are indexed by."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def architecture(model: Any, table: Mapping[str, T]) -> str | None:
    """The name of the first class in ``type(model)``'s MRO that ``table`` knows, else ``None``.

    Class names rather than classes keep torchvision out of module import, and walking the
    MRO lets a user's subclass of ``ResNet`` be treated as a ``ResNet``.
    """
    for cls in type(model).__mro__:
        if cls.__name__ in table:
            return cls.__name__
    return None
