"""The selection engine: which models, which transfer strategy, and why.

Candidates are every catalogue card for the task. Each gets a predicted batch-1 latency on
the target (:mod:`visiontl.selection.latency`), a size, and the task's selection metric (a
published figure, or a stated proxy). Constraints filter; the Pareto frontier over (metric,
latency, size) is marked; a scalar score orders the candidates:

    score = metric - weight[priority] * log2(latency / budget)

so halving the latency is worth ``weight`` metric points (accuracy 0.5, balanced 2, latency 4,
speed 6). Each target has a default priority (``latency`` on battery-powered edge and mobile
targets, ``balanced`` on servers, ``accuracy`` in the cloud); ``priority`` overrides it.
Every candidate carries one line of reasons; the closest rejected ones say why they failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from visiontl.cards import Figure, ModelCard
from visiontl.errors import ConfigError
from visiontl.selection.rules import Advice, advise
from visiontl.selection.targets import Target, get_target, latency_model

#: The selection metric per task, best first: the first figure a card has is used.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("top1",),
    "detection": ("box_map",),
    "instance_segmentation": ("mask_map", "box_map"),
    # Segmentation: published mIoU exists for few models, on different datasets; every card has
    # its encoder's ImageNet top-1 (of the weights it really loads), a common if rough proxy.
    "segmentation": ("encoder_top1", "miou"),
}
PRIORITY_WEIGHTS = {"accuracy": 0.5, "balanced": 2.0, "latency": 4.0, "speed": 6.0}


@dataclass
class Candidate:
    """A model that meets the constraints, with its figures and reasons."""

    id: str
    score: float
    metric: Figure | None
    latency_ms: float | None
    latency_basis: str
    params_m: float | None
    size_mb: float | None
    pareto: bool = False
    measured_ms: float | None = None
    probe_accuracy: float | None = None
    reasons: str = ""
    card: ModelCard | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("card")
        return out


@dataclass
class Rejected:
    """A model that failed a constraint, and which."""

    id: str
    reason: str
    miss: float


@dataclass
class DataSummary:
    """What is known about the user's data."""

    images: int | None
    classes: int | None = None
    min_per_class: int | None = None
    source: str = ""


@dataclass
class Selection:
    """The answer of :func:`select`."""

    task: str
    target: Target
    budget_ms: float
    constraints: dict[str, Any]
    data: DataSummary
    candidates: list[Candidate]
    rejected: list[Rejected]
    advice: Advice
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "target": asdict(self.target),
            "budget_ms": self.budget_ms,
            "constraints": self.constraints,
            "data": asdict(self.data),
            "candidates": [c.as_dict() for c in self.candidates],
            "rejected": [asdict(r) for r in self.rejected],
            "advice": asdict(self.advice),
            "notes": self.notes,
        }


def metric_of(card: ModelCard, task: str) -> Figure | None:
    """The card's selection metric for ``task`` (first available in :data:`TASK_METRICS`).

    An encoder proxy uses the top-1 of the weights the model really loads when the card
    records it (SMP and torchvision segmenters start from older ImageNet weights than the
    classification catalogue's default ones).
    """
    for name in TASK_METRICS.get(task, ()):
        figure = card.metric(name)
        if figure is None:
            continue
        if name == "encoder_top1" and isinstance(card.extras.get("encoder_weights_top1"), (int, float)):
            return Figure(
                "encoder_top1",
                float(card.extras["encoder_weights_top1"]),
                f"ImageNet-1k val top-1 of the encoder weights it loads ({card.extras.get('encoder_weights', 'see card')})",
                figure.source,
            )
        return figure
    return None


def size_mb(card: ModelCard, precision: str = "fp32") -> float | None:
    """Weights file size: 4 bytes per parameter in fp32, 2 in fp16/bf16, 1 in int8."""
    if card.params_m is None:
        return None
    per = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0}.get(precision, 4.0)
    return card.params_m * per


def pareto_front(points: Sequence[tuple[float, float, float]]) -> list[bool]:
    """Which of (metric up, latency down, size down) points no other point dominates."""
    flags = []
    for i, (m, lat, s) in enumerate(points):
        dominated = any(
            (m2 >= m and l2 <= lat and s2 <= s) and (m2 > m or l2 < lat or s2 < s)
            for j, (m2, l2, s2) in enumerate(points)
            if j != i
        )
        flags.append(not dominated)
    return flags


def _fmt_ms(ms: float) -> str:
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _source_label(source: str) -> str:
    if "pytorch-image-models" in source:
        return "timm results"
    if "torchvision" in source or "pytorch/vision" in source:
        return "torchvision weights"
    if "ultralytics" in source.lower():
        return "Ultralytics docs"
    if source.startswith("measured"):
        return "measured here"
    return source.split("/")[0][:40] if source else "published"


def select(
    task: str,
    target: str = "server",
    *,
    images: int | None = None,
    data: str | Path | None = None,
    max_latency_ms: float | None = None,
    max_params_m: float | None = None,
    max_size_mb: float | None = None,
    min_metric: float | None = None,
    top: int = 5,
    priority: str | None = None,
    candidates: Sequence[ModelCard] | None = None,
    targets_file: Path | None = None,
) -> Selection:
    """Recommend models and a transfer strategy.

    Args:
        task: ``classification``, ``detection``, ``instance_segmentation``, ``segmentation``.
        target: a target name (``edge``, ``mobile``, ``server``, ``cloud``, ``local`` ...).
        images: number of training images (or give ``data``).
        data: a dataset folder to count (ImageFolder classes are counted too).
        max_latency_ms: batch-1 budget (default: the target's for the task).
        max_params_m: largest parameter count in millions.
        max_size_mb: largest weights file at the target's precision (default: the target's limit).
        min_metric: lowest acceptable selection metric.
        top: how many candidates to return.
        priority: ``accuracy``, ``balanced``, ``latency`` or ``speed`` (default: the target's).
        candidates: cards to choose from (default: the installed catalogue).
        targets_file: extra target definitions.

    Returns:
        A :class:`Selection`; never imports torch.

    Example:
        >>> s = select("classification", "mobile", images=30_000)  # doctest: +SKIP
        >>> s.best.id, s.advice.strategy  # doctest: +SKIP
    """
    if priority is not None and priority not in PRIORITY_WEIGHTS:
        raise ConfigError(f"Unknown priority '{priority}'.", fix=f"use one of: {', '.join(PRIORITY_WEIGHTS)}")
    if task not in TASK_METRICS:
        from visiontl.ids import suggest

        close = suggest(task, TASK_METRICS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"Unknown task '{task}' for selection.{hint}", fix=f"use one of: {', '.join(TASK_METRICS)}")
    tgt = get_target(target, targets_file)
    priority = priority or tgt.priority
    model = latency_model(tgt)
    notes: list[str] = []
    if model is None:
        if tgt.latency_model.get("calibration"):
            raise ConfigError(f"Target '{tgt.name}' needs this machine's calibration.", fix="run: visiontl select --calibrate")
        notes.append(f"no latency model for target '{tgt.name}': latency constraints cannot be checked")
    summary = count_data(Path(data), task) if data is not None else DataSummary(images)
    if data is None and images is None:
        summary = DataSummary(None)
    budget = max_latency_ms if max_latency_ms is not None else tgt.budget(task)
    size_limit = max_size_mb if max_size_mb is not None else tgt.max_size_mb
    cards = list(candidates) if candidates is not None else _catalogue(task)
    weight = PRIORITY_WEIGHTS[priority]

    kept: list[Candidate] = []
    rejected: list[Rejected] = []
    for card in cards:
        if task not in card.tasks:
            continue
        metric = metric_of(card, task)
        latency = model.predict(card.profile) if model is not None else None
        size = size_mb(card, tgt.precision)
        problems: list[tuple[str, float]] = []
        if latency is not None and latency > budget:
            problems.append((f"predicted {_fmt_ms(latency)} > {_fmt_ms(budget)} budget", latency / budget - 1))
        if latency is None and model is not None:
            problems.append(("no MAC profile to predict its latency", 1.0))
        if max_params_m is not None and card.params_m is not None and card.params_m > max_params_m:
            problems.append((f"{card.params_m:.1f} M params > {max_params_m:g} M", card.params_m / max_params_m - 1))
        if size is not None and size > size_limit:
            problems.append((f"{size:.0f} MB > {size_limit:g} MB size limit", size / size_limit - 1))
        if min_metric is not None and (metric is None or metric.value < min_metric):
            shown = f"{metric.value:g}" if metric else "unknown"
            problems.append((f"{TASK_METRICS[task][0]} {shown} < {min_metric:g}", 1.0))
        if problems:
            rejected.append(Rejected(card.id, "; ".join(p for p, _ in problems), sum(m for _, m in problems)))
            continue
        value = metric.value if metric is not None else 0.0
        score = value - (weight * math.log2(latency / budget) if latency else 0.0)
        kept.append(
            Candidate(
                id=card.id,
                score=score,
                metric=metric,
                latency_ms=latency,
                latency_basis=model.basis if model is not None else "",
                params_m=card.params_m,
                size_mb=size,
                card=card,
            )
        )
    flags = pareto_front([(c.metric.value if c.metric else 0.0, c.latency_ms or 0.0, c.size_mb or 0.0) for c in kept])
    for c, flag in zip(kept, flags, strict=True):
        c.pareto = flag
    kept.sort(key=lambda c: (-c.score, c.latency_ms or 0.0))
    for c in kept:
        c.reasons = reasons_line(c, budget, task)
    rejected.sort(key=lambda r: r.miss)
    advice = advise(summary.images, tgt, priority, summary.min_per_class)
    constraints = {
        "max_latency_ms": budget,
        "max_params_m": max_params_m,
        "max_size_mb": size_limit,
        "min_metric": min_metric,
        "priority": priority,
    }
    return Selection(task, tgt, budget, constraints, summary, kept[:top], rejected[:3], advice, notes)


def reasons_line(c: Candidate, budget: float, task: str) -> str:
    parts = []
    if c.measured_ms is not None:
        parts.append(f"measured {_fmt_ms(c.measured_ms)} <= {_fmt_ms(budget)} budget")
    elif c.latency_ms is not None:
        parts.append(f"predicted {_fmt_ms(c.latency_ms)} <= {_fmt_ms(budget)} budget")
    if c.params_m is not None:
        parts.append(f"{c.params_m:.1f} M params")
    if c.metric is not None:
        label = {"top1": "ImageNet top-1", "box_map": "COCO box mAP", "mask_map": "COCO mask mAP", "miou": "mIoU", "encoder_top1": "encoder ImageNet top-1 (proxy)"}.get(c.metric.name, c.metric.name)
        parts.append(f"{label} {c.metric.value:g} ({_source_label(c.metric.source)})")
    else:
        parts.append("no published accuracy figure")
    if c.card is not None and c.metric is not None and c.metric.name != "miou":
        miou = c.card.metric("miou")
        if miou is not None:
            parts.append(f"published mIoU {miou.value:g} ({miou.dataset or 'see card'})")
    if c.probe_accuracy is not None:
        parts.append(f"probe accuracy {c.probe_accuracy:.3f} on your data")
    if c.pareto:
        parts.append("Pareto-optimal")
    return "; ".join(parts)


def _catalogue(task: str) -> list[ModelCard]:
    from visiontl.catalogue import catalogue

    return catalogue(task=task)


def count_data(path: Path, task: str) -> DataSummary:
    """Count training images under ``path`` (and per class for ImageFolder layouts)."""
    from visiontl.data.images import is_image_file

    if not path.exists():
        raise ConfigError(f"--data '{path}' does not exist.")
    root = path / "train" if (path / "train").is_dir() else path
    classes = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")] if task == "classification" else []
    if classes and all(any(is_image_file(f) for f in d.iterdir() if f.is_file()) for d in classes[:3]):
        per = [sum(1 for f in d.rglob("*") if f.is_file() and is_image_file(f)) for d in classes]
        return DataSummary(sum(per), len(classes), min(per), f"{root} (ImageFolder)")
    total = sum(1 for f in root.rglob("*") if f.is_file() and is_image_file(f))
    return DataSummary(total, None, None, str(root))
