"""What a task ranks models by in ``visiontl select``: its selection metric, as plain data.

A task describes (:meth:`visiontl.tasks.base.TaskAdapter.selection_metric`): which published
card figures count, matched on the figure's name *and* its dataset, in which direction, and
whether they are the task's own measure or a labelled proxy. The selection engine
(:mod:`visiontl.selection.engine`) decides: it picks each card's figure with these rules and
ranks. A figure that does not match (a ``top1`` measured on CIFAR-10 when the rule wants
ImageNet) is shown for what it is and never ranked.

No torch here: ``visiontl select`` reads it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from visiontl.contracts import DENSE_MAP, DETECTOR, IMAGE_VECTOR


@dataclass(frozen=True)
class FigureRule:
    """A published card figure that counts for a selection metric.

    Attributes:
        metric: the figure's name on cards (``top1``, ``box_map``, ``encoder_top1`` ...).
        dataset: text the figure's ``dataset`` must contain, case-insensitive (``imagenet``,
            ``coco``); empty: any dataset, and the dataset is shown with the value.
        label: how the figure is named in reasons (``ImageNet top-1``); default: the metric.

    Example:
        >>> from visiontl.cards import Figure
        >>> rule = FigureRule("top1", "imagenet", "ImageNet top-1")
        >>> rule.matches(Figure("top1", 79.1, "ImageNet-1k val")), rule.matches(Figure("top1", 91.8, "CIFAR-10 test"))
        (True, False)
    """

    metric: str
    dataset: str = ""
    label: str = ""

    def matches(self, figure: object) -> bool:
        """Whether ``figure`` (a :class:`~visiontl.cards.Figure`) is one this rule counts."""
        name = getattr(figure, "name", None)
        dataset = str(getattr(figure, "dataset", "") or "")
        return name == self.metric and (not self.dataset or self.dataset.lower() in dataset.lower())

    @property
    def shown(self) -> str:
        return self.label or self.metric


@dataclass(frozen=True)
class SelectionMetric:
    """How ``visiontl select`` ranks models for one task.

    Attributes:
        name: what the metric column holds (``ImageNet top-1``, ``COCO box mAP``,
            ``backbone ImageNet top-1 (proxy)``).
        figures: the card figures that count, best first: the first one a card has is used.
            Empty: no figure counts, models are ranked by latency and size only.
        higher_is_better: direction of those figures (an error rate would be ``False``).
        proxy: the figures stand in for the task's own metric (a backbone's ImageNet top-1
            for a regression): every reason and the notes say so.
        note: one line shown with every selection for the task (why this metric).
    """

    name: str
    figures: tuple[FigureRule, ...] = ()
    higher_is_better: bool = True
    proxy: bool = False
    note: str = ""


#: ImageNet-1k top-1, the figure classification catalogues publish.
IMAGENET_TOP1 = FigureRule("top1", "imagenet", "ImageNet top-1")


def proxy_metric(output: str, task: str, own_metric: str = "") -> SelectionMetric:
    """The selection metric of a task that publishes no figures of its own, from its output.

    Models that provide an image-level vector are ranked by their backbone's ImageNet top-1
    (the classification figure of the same model), dense-map models by their encoder's, and
    detectors by COCO box mAP. Any other output: no figure counts.

    Args:
        output: the task's output contract (``TaskAdapter.output``).
        task: the task's name, for the note.
        own_metric: the task's primary metric, for the note.

    Example:
        >>> proxy_metric("image_vector", "regression", "mae").name
        'backbone ImageNet top-1 (proxy)'
    """
    own = f" {own_metric}" if own_metric else ""
    if output == IMAGE_VECTOR:
        label = "backbone ImageNet top-1 (proxy)"
        return SelectionMetric(
            label, (FigureRule("top1", "imagenet", label),), proxy=True,
            note=f"no published{own} figures for task '{task}': models are ranked by their backbone's ImageNet top-1, "
                 "a proxy for how well their features transfer",
        )
    if output == DENSE_MAP:
        return SelectionMetric(
            "encoder ImageNet top-1 (proxy)",
            (FigureRule("encoder_top1", "imagenet", "encoder ImageNet top-1 (proxy)"), FigureRule("top1", "imagenet", "backbone ImageNet top-1 (proxy)")),
            proxy=True,
            note=f"no published{own} figures for task '{task}': models are ranked by their encoder's ImageNet top-1 (a proxy)",
        )
    if output == DETECTOR:
        return SelectionMetric("COCO box mAP", (FigureRule("box_map", "coco", "COCO box mAP"),))
    return SelectionMetric("none", (), note=f"task '{task}' names no selection metric: models are ranked by latency and size only")


__all__ = ["IMAGENET_TOP1", "FigureRule", "SelectionMetric", "proxy_metric"]
