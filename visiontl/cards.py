"""Model cards: what the catalogue knows about a model, each figure with its provenance.

A card is plain data (no torch). Plugins contribute cards through ``visiontl_select``;
the selection engine and ``visiontl models`` read them. Published figures say where they
come from; figures measured by visiontl say where and how.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One number with its provenance.

    Attributes:
        name: what it measures (``top1``, ``box_map``, ``latency_ms`` ...).
        value: the number.
        dataset: the dataset or condition it was measured on (``ImageNet-1k val``).
        source: where it was published (``repo@commit:path`` or a URL), or
            ``measured: <command>`` for figures visiontl measured itself.
        device: for latencies, the device and settings.
    """

    name: str
    value: float
    dataset: str = ""
    source: str = ""
    device: str = ""


@dataclass(frozen=True)
class ModelCard:
    """What the catalogue knows about one model.

    Attributes:
        id: the model id (``timm:efficientnet_b0``).
        tasks: tasks the model serves.
        params_m: parameters in millions (for the task's default head), if known.
        gmacs: multiply-accumulates per image in billions at ``input_size``, if known.
        input_size: the (height, width) the figures refer to.
        metrics: published accuracy figures.
        latencies: published or measured latencies.
        licence: licence of the weights (or code when there are no weights).
        weights: where pretrained weights come from (``hf-hub:timm/...``, a URL), empty if none.
        tags: free hints for selection (``mobile``, ``edge-friendly``, ``transformer`` ...).
        notes: one line worth knowing.
    """

    id: str
    tasks: tuple[str, ...]
    params_m: float | None = None
    gmacs: float | None = None
    input_size: tuple[int, int] = (224, 224)
    metrics: tuple[Figure, ...] = ()
    latencies: tuple[Figure, ...] = ()
    licence: str = ""
    weights: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    notes: str = ""
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def family(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.id.split(":", 1)[1]

    def metric(self, name: str) -> Figure | None:
        """The first published figure called ``name``."""
        return next((m for m in self.metrics if m.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
