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
class MacProfile:
    """Where a model's multiply-accumulates go, at the card's input size and batch 1.

    Counted by building the model on the meta device (no memory, no weights) with
    :func:`visiontl.selection.profile.mac_profile`. Latency depends on more than the MAC
    total: depthwise convolutions and many small layers cost more per MAC on most hardware.

    Attributes:
        macs: every multiply-accumulate (torch's FlopCounterMode FLOPs / 2).
        dense: MACs of everything but grouped convolutions (convolutions, linear layers,
            attention matrix products).
        depthwise: MACs of grouped (depthwise) convolutions.
        layers: convolutions and matrix products executed.
        activations: elements those operations write (a memory-traffic proxy).
    """

    macs: float
    dense: float
    depthwise: float
    layers: int
    activations: float


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
        tags: free hints for selection (``mobile``, ``realtime``, ``transformer`` ...).
        notes: one line worth knowing.
        arch: architecture family (``efficientnet``, ``yolov8``, ``deeplabv3plus`` ...): latency
            corrections learnt for one member apply to its family.
        profile: the MAC breakdown the latency model uses.
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
    arch: str = ""
    profile: MacProfile | None = None
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

    @property
    def has_weights(self) -> bool:
        """Whether published pretrained weights exist for it."""
        return bool(self.weights)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """The inverse of :meth:`as_dict` (catalogue data files are stored this way)."""
        data = dict(data)
        data["tasks"] = tuple(data.get("tasks", ()))
        data["input_size"] = tuple(data.get("input_size", (224, 224)))
        data["metrics"] = tuple(Figure(**f) for f in data.get("metrics", ()))
        data["latencies"] = tuple(Figure(**f) for f in data.get("latencies", ()))
        data["weights"] = tuple(data.get("weights", ()))
        data["tags"] = tuple(data.get("tags", ()))
        if data.get("profile"):
            data["profile"] = MacProfile(**data["profile"])
        return cls(**data)
