"""The model-id grammar, parsed in one place.

A model id is ``family:name``: ``timm:efficientnet_b0``, ``timm:resnet50.a1_in1k``,
``torchvision:squeezenet1_1``, ``ultralytics:yolov8n``, ``smp:unet-resnet34``. The family
selects the plugin; the name is the plugin's own (timm pretrained tags included).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from visiontl.errors import ConfigError, UnknownModelError

_FAMILY = re.compile(r"^[a-z][a-z0-9_\-]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.+/]*$")


@dataclass(frozen=True, order=True)
class ModelId:
    """A parsed model id.

    Attributes:
        family: plugin family (``timm``, ``torchvision``, ...), lower case.
        name: the model's name within that family.
    """

    family: str
    name: str

    def __str__(self) -> str:
        return f"{self.family}:{self.name}"


def parse_model_id(text: str) -> ModelId:
    """Parse ``family:name`` into a :class:`ModelId`.

    Raises:
        ConfigError: the text does not follow the grammar.

    Example:
        >>> parse_model_id("timm:efficientnet_b0")
        ModelId(family='timm', name='efficientnet_b0')
    """
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(
            f"Model id {text!r} has no family prefix.",
            fix="write it as family:name, e.g. 'timm:efficientnet_b0' or "
            "'torchvision:squeezenet1_1'; list valid ids with: visiontl models",
        )
    family, _, name = text.strip().partition(":")
    family = family.strip().lower()
    name = name.strip()
    if not _FAMILY.match(family) or not name or not _NAME.match(name):
        raise ConfigError(
            f"Model id {text!r} is malformed.",
            fix="write it as family:name with letters, digits, '_', '-', '.' "
            "(e.g. 'timm:resnet50.a1_in1k'); list valid ids with: visiontl models",
        )
    return ModelId(family, name)


_LOOKALIKE = str.maketrans({"o": "0", "l": "1", "i": "1", "-": "_", " ": "_"})


def suggest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The closest matches of ``word`` among ``choices`` (case-insensitive), best first.

    Candidates are ranked by similarity after folding look-alike characters (``o``/``0``,
    ``l``/``1``, ``-``/``_``), then by plain similarity, so ``efficientnet_bo`` suggests
    ``efficientnet_b0`` first.
    """
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    pool = difflib.get_close_matches(word.lower(), list(lowered), n=max(n * 10, 30), cutoff=0.6)
    folded = word.lower().translate(_LOOKALIKE)

    def score(candidate: str) -> tuple[float, float]:
        return (
            difflib.SequenceMatcher(None, folded, candidate.translate(_LOOKALIKE)).ratio(),
            difflib.SequenceMatcher(None, word.lower(), candidate).ratio(),
        )

    return [lowered[c] for c in sorted(pool, key=score, reverse=True)[:n]]


def unknown_model(model_id: ModelId, known: Iterable[str]) -> UnknownModelError:
    """Build the error for a name its family does not know, with did-you-mean and the fix."""
    close = suggest(model_id.name, known)
    hint = ""
    if close:
        hint = " Did you mean " + " or ".join(f"'{model_id.family}:{c}'" for c in close) + "?"
    return UnknownModelError(
        f"Unknown model '{model_id}'.{hint}",
        fix=f"list valid ids with: visiontl models --family {model_id.family} --all",
    )
