"""The selection engine: which models, which transfer strategy, and why.

Candidates are every catalogue card for the task: the cards offered for it, and those of
every family that provides the task's output (``PluginInfo.outputs``; a new regression task
gets the timm and torchvision classifiers). Each gets a predicted batch-1 latency on the
target (:mod:`visiontl.selection.latency`), a size, and the task's selection metric
(:meth:`visiontl.tasks.base.TaskAdapter.selection_metric`): a published figure matched on its
name *and* dataset, or a labelled proxy. A figure measured on another dataset (a CIFAR-10
``top1`` when ImageNet is wanted) is shown for what it is and never ranked. Constraints
filter; the Pareto frontier over (metric, latency, size) is marked; a scalar score orders the
candidates:

    score = metric - weight[priority] * log2(latency / budget)

(``-metric`` for a lower-is-better metric), so halving the latency is worth ``weight`` metric
points (accuracy 0.5, balanced 2, latency 4, speed 6). Each target has a default priority
(``latency`` on battery-powered edge and mobile targets, ``balanced`` on servers, ``accuracy``
in the cloud); ``priority`` overrides it. Every candidate carries one line of reasons; the
closest rejected ones say why they failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.cards import Figure, ModelCard
from visiontl.errors import ConfigError, PluginError
from visiontl.selection.rules import Advice, advise
from visiontl.selection.targets import Target, get_target, latency_model
from visiontl.tasks.selection import SelectionMetric

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.plugin_manager import Plugins
    from visiontl.tasks.base import TaskAdapter

#: The figure names the built-in tasks rank by, best first (kept for callers that read it;
#: each task's ``selection_metric()`` is what the engine uses, for every registered task).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("top1",),
    "detection": ("box_map",),
    "instance_segmentation": ("mask_map", "box_map"),
    "segmentation": ("encoder_top1", "miou"),
}
PRIORITY_WEIGHTS = {"accuracy": 0.5, "balanced": 2.0, "latency": 4.0, "speed": 6.0}


@dataclass
class Candidate:
    """A model that meets the constraints, with its figures and reasons.

    Attributes:
        metric: the figure it is ranked by (``None``: none of the task's figures).
        metric_label: how that figure is named (``ImageNet top-1``, ``backbone ImageNet
            top-1 (proxy)``).
        higher_is_better: direction of the selection metric.
        unranked: the card's figures of the same names measured elsewhere (another dataset),
            shown for what they are, never ranked.
    """

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
    metric_label: str = ""
    higher_is_better: bool = True
    unranked: list[str] = field(default_factory=list)
    card: ModelCard | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("card")
        return out

    @property
    def ranked_value(self) -> float:
        """The metric as the score uses it: higher is better (0 without a figure)."""
        if self.metric is None:
            return 0.0
        return self.metric.value if self.higher_is_better else -self.metric.value


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


def selection_metric(task: str, plugins: Plugins | None = None) -> SelectionMetric:
    """The registered task's selection metric (did-you-mean for an unknown task name).

    Raises:
        ConfigError: no installed plugin defines ``task``.
    """
    return _task(task, plugins).selection_metric()


def _task(task: str, plugins: Plugins | None) -> TaskAdapter:
    from visiontl.plugin_manager import get_plugins
    from visiontl.tasks.registry import resolve_task

    try:
        return resolve_task(plugins or get_plugins(), task)
    except PluginError as exc:
        raise ConfigError(exc.message.replace(f"Unknown task '{task}'", f"Unknown task '{task}' for selection", 1), fix=exc.fix) from None


def metric_of(card: ModelCard, task: str | SelectionMetric) -> Figure | None:
    """The card's figure for the selection metric of ``task`` (a task name or its
    :class:`~visiontl.tasks.selection.SelectionMetric`): the first rule, in order, that a
    figure of the card matches on name *and* dataset.

    An encoder proxy uses the top-1 of the weights the model really loads when the card
    records it (SMP and torchvision segmenters start from older ImageNet weights than the
    classification catalogue's default ones).
    """
    spec = task if isinstance(task, SelectionMetric) else selection_metric(task)
    for rule in spec.figures:
        figure = next((f for f in card.metrics if rule.matches(f)), None)
        if figure is None:
            continue
        if rule.metric == "encoder_top1" and isinstance(card.extras.get("encoder_weights_top1"), (int, float)):
            return Figure(
                "encoder_top1",
                float(card.extras["encoder_weights_top1"]),
                f"ImageNet-1k val top-1 of the encoder weights it loads ({card.extras.get('encoder_weights', 'see card')})",
                figure.source,
            )
        return figure
    return None


def label_of(figure: Figure | None, spec: SelectionMetric) -> str:
    """How ``figure`` is named in reasons: the label of the rule it matched."""
    if figure is None:
        return spec.name
    rule = next((r for r in spec.figures if r.matches(figure)), None)
    return rule.shown if rule is not None else figure.name


def unranked_figures(card: ModelCard, spec: SelectionMetric, ranked: Figure | None) -> list[str]:
    """The card's figures named like the metric's but measured elsewhere (a ``top1`` on
    CIFAR-10 when ImageNet is wanted), as ``"top1 91.78 on CIFAR-10 (source)"``: shown, never
    ranked."""
    names = {r.metric for r in spec.figures}
    out = []
    for f in card.metrics:
        if f.name in names and f is not ranked and not any(r.matches(f) for r in spec.figures):
            out.append(f"{f.name} {f.value:g} on {f.dataset or 'an unnamed dataset'} ({f.source or 'no source'})")
    return out


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
    plugins: Plugins | None = None,
) -> Selection:
    """Recommend models and a transfer strategy.

    Args:
        task: any registered task (``classification``, ``detection``,
            ``instance_segmentation``, ``segmentation``, a plugin's own); its
            ``selection_metric()`` says which figures rank the models.
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
        plugins: the plugin manager (default: the process-wide one).

    Returns:
        A :class:`Selection`; never imports torch.

    Example:
        >>> s = select("classification", "mobile", images=30_000)  # doctest: +SKIP
        >>> s.best.id, s.advice.strategy  # doctest: +SKIP
    """
    if priority is not None and priority not in PRIORITY_WEIGHTS:
        raise ConfigError(f"Unknown priority '{priority}'.", fix=f"use one of: {', '.join(PRIORITY_WEIGHTS)}")
    adapter = _task(task, plugins)
    spec = adapter.selection_metric()
    tgt = get_target(target, targets_file)
    priority = priority or tgt.priority
    model = latency_model(tgt)
    notes: list[str] = []
    if model is None:
        if tgt.latency_model.get("calibration"):
            raise ConfigError(f"Target '{tgt.name}' needs this machine's calibration.", fix="run: visiontl select --calibrate")
        notes.append(f"no latency model for target '{tgt.name}': latency constraints cannot be checked")
    if spec.note:
        notes.append(spec.note)
    summary = count_data(Path(data), task, adapter) if data is not None else DataSummary(images)
    if data is None and images is None:
        summary = DataSummary(None)
    budget = max_latency_ms if max_latency_ms is not None else tgt.budget(_budget_task(task, adapter, tgt, plugins, notes))
    size_limit = max_size_mb if max_size_mb is not None else tgt.max_size_mb
    cards = list(candidates) if candidates is not None else _catalogue(task, plugins)
    weight = PRIORITY_WEIGHTS[priority]

    kept: list[Candidate] = []
    rejected: list[Rejected] = []
    for card in cards:
        if task not in card.tasks:
            continue
        metric = metric_of(card, spec)
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
        if min_metric is not None and (metric is None or (metric.value < min_metric if spec.higher_is_better else metric.value > min_metric)):
            shown = f"{metric.value:g}" if metric else "unknown"
            name = metric.name if metric else (spec.figures[0].metric if spec.figures else spec.name)
            problems.append((f"{name} {shown} {'<' if spec.higher_is_better else '>'} {min_metric:g}", 1.0))
        if problems:
            rejected.append(Rejected(card.id, "; ".join(p for p, _ in problems), sum(m for _, m in problems)))
            continue
        candidate = Candidate(
            id=card.id,
            score=0.0,
            metric=metric,
            latency_ms=latency,
            latency_basis=model.basis if model is not None else "",
            params_m=card.params_m,
            size_mb=size,
            metric_label=label_of(metric, spec),
            higher_is_better=spec.higher_is_better,
            unranked=unranked_figures(card, spec, metric),
            card=card,
        )
        candidate.score = candidate.ranked_value - (weight * math.log2(latency / budget) if latency else 0.0)
        kept.append(candidate)
    flags = pareto_front([(c.ranked_value, c.latency_ms or 0.0, c.size_mb or 0.0) for c in kept])
    for c, flag in zip(kept, flags, strict=True):
        c.pareto = flag
    kept.sort(key=lambda c: (-c.score, c.latency_ms or 0.0))
    for c in kept:
        c.reasons = reasons_line(c, budget, task)
    rejected.sort(key=lambda r: r.miss)
    advice = advise(summary.images, tgt, priority, summary.min_per_class, adapter.large_data_settings())
    constraints = {
        "max_latency_ms": budget,
        "max_params_m": max_params_m,
        "max_size_mb": size_limit,
        "min_metric": min_metric,
        "priority": priority,
    }
    return Selection(task, tgt, budget, constraints, summary, kept[:top], rejected[:3], advice, notes)


def reasons_line(c: Candidate, budget: float, task: str = "") -> str:
    """One line of reasons for a candidate: latency against the budget, size, its selection
    figure (named, with its whole source), figures not ranked, probe, Pareto."""
    parts = []
    if c.measured_ms is not None:
        parts.append(f"measured {_fmt_ms(c.measured_ms)} <= {_fmt_ms(budget)} budget")
    elif c.latency_ms is not None:
        parts.append(f"predicted {_fmt_ms(c.latency_ms)} <= {_fmt_ms(budget)} budget")
    if c.params_m is not None:
        parts.append(f"{c.params_m:.1f} M params")
    if c.metric is not None:
        label = c.metric_label or c.metric.name
        parts.append(f"{label} {c.metric.value:g} ({c.metric.source or 'no source given'})")
    else:
        wanted = f" {c.metric_label}" if c.metric_label and c.metric_label != "none" else " accuracy"
        parts.append(f"no published{wanted} figure")
    for other in c.unranked:
        parts.append(f"{other}: another dataset, not ranked")
    if c.card is not None and c.metric is not None and c.metric.name != "miou":
        miou = c.card.metric("miou")
        if miou is not None:
            parts.append(f"published mIoU {miou.value:g} ({miou.dataset or 'see card'})")
    if c.probe_accuracy is not None:
        parts.append(f"probe accuracy {c.probe_accuracy:.3f} on your data")
    if c.pareto:
        parts.append("Pareto-optimal")
    return "; ".join(parts)


def _budget_task(task: str, adapter: TaskAdapter, tgt: Target, plugins: Plugins | None, notes: list[str]) -> str:
    """The task whose latency budget applies: its own when the target names one, else that of a
    task whose models give the same output (a regression takes classification's)."""
    if task in tgt.latency_budget_ms:
        return task
    from visiontl.plugin_manager import get_plugins
    from visiontl.tasks.registry import tasks_with_output

    for other in tasks_with_output(adapter.output, plugins or get_plugins()):
        if other in tgt.latency_budget_ms:
            notes.append(f"target '{tgt.name}' has no latency budget for '{task}': the budget of '{other}' (same model output) applies")
            return other
    return task


def _catalogue(task: str, plugins: Plugins | None = None) -> list[ModelCard]:
    from visiontl.catalogue import catalogue

    return catalogue(task=task, plugins=plugins)


def count_data(path: Path, task: str, adapter: TaskAdapter | None = None) -> DataSummary:
    """Count training images under ``path`` (and per class for ImageFolder layouts, when the
    task reads ImageFolder data)."""
    from visiontl.data.images import is_image_file

    if not path.exists():
        raise ConfigError(f"--data '{path}' does not exist.")
    if adapter is None:
        from visiontl.tasks.registry import find_task

        adapter = find_task(task)
    root = path / "train" if (path / "train").is_dir() else path
    folders = adapter is not None and "imagefolder" in adapter.formats
    classes = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")] if folders else []
    if classes and all(any(is_image_file(f) for f in d.iterdir() if f.is_file()) for d in classes[:3]):
        per = [sum(1 for f in d.rglob("*") if f.is_file() and is_image_file(f)) for d in classes]
        return DataSummary(sum(per), len(classes), min(per), f"{root} (ImageFolder)")
    total = sum(1 for f in root.rglob("*") if f.is_file() and is_image_file(f))
    return DataSummary(total, None, None, str(root))
