"""Proposing the search space from the selection engine and the base recipe.

* Models: ``--models`` when given; otherwise the base recipe's model (with its weights and
  options) plus the selection engine's top candidates within the target's latency budget.
  A task the selection engine has no metric for (a third-party task) gets the catalogue's
  cards for it ranked by predicted latency on the target, within the same budget.
* Strategies and augmentation: what :func:`visiontl.selection.rules.advise` says for the
  data size and target, plus the neighbouring choices (one step lighter, one step heavier).
* Input sizes: the recipe's (or the models') size and three quarters of it.

No torch here: ``--dry-run`` proposes and prints without building a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from visiontl.errors import ConfigError
from visiontl.search.section import AUGMENTATION_ORDER, STRATEGY_ORDER, SearchSection
from visiontl.search.space import CandidateModel, SearchSpace, candidate_key

DEFAULT_EPOCHS = 10


def neighbours(value: str, order: Sequence[str]) -> list[str]:
    """``value`` and the choices next to it in ``order``.

    Example:
        >>> neighbours("progressive", ("feature_extraction", "progressive", "full"))
        ['feature_extraction', 'progressive', 'full']
    """
    if value not in order:
        return [value]
    i = order.index(value)
    return list(order[max(0, i - 1): i + 2])


def parse_models(items: Sequence[str]) -> list[tuple[str, str | None]]:
    """``["timm:resnet18", "torchvision:squeezenet1_1=weights/x.pth"]`` -> ``[(id, weights)]``
    (each id checked by the id grammar; a comma-separated string is split too)."""
    from visiontl.ids import parse_model_id

    out: list[tuple[str, str | None]] = []
    for item in items:
        for text in str(item).split(","):
            text = text.strip()
            if not text:
                continue
            model_id, _, weights = text.partition("=")
            parse_model_id(model_id.strip())
            out.append((model_id.strip(), weights.strip() or None))
    if not out:
        raise ConfigError("--models is empty.", fix="e.g. --models timm:resnet18,torchvision:squeezenet1_1")
    return list(dict.fromkeys(out))


def _round32(size: float) -> int:
    return max(32, int(round(size / 32.0)) * 32)


def _profile(card: Any) -> dict[str, float] | None:
    return asdict(card.profile) if card is not None and card.profile is not None else None


def propose(task: str, base: dict[str, Any], section: SearchSection, data_path: Path | None,
            plugins: Any = None, summary: Any = None) -> SearchSpace:
    """The search space for ``task`` on ``data_path`` under ``section``.

    Args:
        task: the task name.
        base: the base recipe dict (its model, weights, options, size and epochs are used).
        section: the search settings.
        data_path: the dataset folder, to count images for the strategy rules (``None``: unknown).
        plugins: the plugin manager (default: the process-wide one).
        summary: the data's :class:`~visiontl.selection.engine.DataSummary` when known (the
            task's own scan); default: files counted under ``data_path``.

    Raises:
        ConfigError: no candidate is left (none meets the target's budget and none was given).
    """
    from visiontl.catalogue import catalogue
    from visiontl.selection import engine
    from visiontl.selection.rules import advise
    from visiontl.selection.targets import get_target, latency_model

    tgt = get_target(section.target)
    model = latency_model(tgt)
    notes: list[str] = []
    if summary is None and data_path is not None and Path(data_path).exists():
        try:
            summary = engine.count_data(Path(data_path), task)
        except (ConfigError, OSError) as exc:
            notes.append(f"could not count the data ({exc}): strategy rules assume an unknown size")
    summary = summary or engine.DataSummary(None)
    cards = {c.id: c for c in catalogue(task=task, plugins=plugins)}
    budget_ms = section.max_latency_ms or tgt.budget(task)

    def predicted(card: Any) -> float | None:
        return model.predict(card.profile) if model is not None and card is not None else None

    def from_card(model_id: str, weights: str | None, source: str, pretrained: bool | None = None, options: dict | None = None) -> CandidateModel:
        card = cards.get(model_id)
        return CandidateModel(
            key=candidate_key(model_id, weights), model_id=model_id, weights=weights,
            pretrained=(bool(card and card.has_weights) if pretrained is None else pretrained) and weights is None,
            options=dict(options or {}), source=source, predicted_ms=predicted(card),
            params_m=card.params_m if card else None, card_size=card.input_size[0] if card else None,
            profile=_profile(card),
        )

    base_model = base.get("model") or {}
    base_id = base_model.get("id")
    candidates: list[CandidateModel] = []
    if section.models:
        for model_id, weights in parse_models(section.models):
            same = model_id == base_id
            candidates.append(from_card(model_id, weights, "models", bool(base_model.get("pretrained")) if same else None,
                                        base_model.get("options") if same else None))
    else:
        if base_id:
            candidates.append(from_card(base_id, base_model.get("weights"), "recipe", bool(base_model.get("pretrained")), base_model.get("options")))
        for cand in _selected(task, section, tgt, summary, cards, budget_ms, model, notes)[: section.top]:
            if any(c.model_id == cand.id for c in candidates):
                continue
            c = from_card(cand.id, None, "selection")
            c.reasons = cand.reasons
            candidates.append(c)
    if not candidates:
        raise ConfigError(
            f"No candidate model for task '{task}' within the '{tgt.name}' target's {budget_ms:g} ms budget.",
            fix="give models with --models, a base recipe with --recipe, or another --target",
        )

    advice = advise(summary.images, tgt, tgt.priority, summary.min_per_class)
    notes += advice.reasons
    # The base recipe's own choices join the advised ones, so that it is a point of the space
    # (it is tried first) and the search starts from what the user already has.
    base_strategy = (base.get("strategy") or {}).get("name") if base_id else None
    base_preset = (base.get("augmentation") or {}).get("preset") if base_id else None
    strategies = list(section.strategies or _with(neighbours(advice.strategy, STRATEGY_ORDER), base_strategy, STRATEGY_ORDER))
    augmentations = list(section.augmentations or _with(neighbours(advice.augmentation, AUGMENTATION_ORDER), base_preset, AUGMENTATION_ORDER))
    size = (base.get("data") or {}).get("image_size") or _common_size(candidates)
    sizes = list(section.sizes or sorted({_round32(0.75 * size), int(size)}))
    epochs = section.epochs or _base_epochs(base)
    lr = (float(section.lr[0]), float(section.lr[1]))
    return SearchSpace(candidates, strategies, lr, list(section.lr_spread), sizes, augmentations, epochs, notes)


def _base_epochs(base: dict[str, Any]) -> int:
    """The base recipe's epochs: its progressive phases' sum when it lists them."""
    strategy = base.get("strategy") or {}
    if strategy.get("name") == "progressive" and strategy.get("phase_epochs"):
        return int(sum(strategy["phase_epochs"]))
    return int((base.get("train") or {}).get("epochs") or DEFAULT_EPOCHS)


def _with(values: list[str], extra: str | None, order: Sequence[str]) -> list[str]:
    """``values`` plus ``extra`` (when it is one of ``order``), in ``order``."""
    if extra in order and extra not in values:
        values = [v for v in order if v in values or v == extra]
    return values


def _common_size(candidates: list[CandidateModel]) -> int:
    sizes = [c.card_size for c in candidates if c.card_size]
    return max(set(sizes), key=sizes.count) if sizes else 224


def _selected(task: str, section: SearchSection, tgt: Any, summary: Any, cards: dict[str, Any], budget_ms: float,
              model: Any, notes: list[str]) -> list[Any]:
    """The selection engine's candidates (or, for a task it has no metric for, the task's
    cards within the latency budget, fastest first)."""
    from visiontl.selection import engine

    if section.top == 0:
        return []
    if task in engine.TASK_METRICS:
        selection = engine.select(task, tgt.name, images=summary.images, max_latency_ms=section.max_latency_ms, top=section.top)
        notes += selection.notes
        return list(selection.candidates)
    notes.append(f"the selection engine has no accuracy metric for task '{task}': its catalogue cards are ranked by predicted latency on '{tgt.name}' alone")
    ranked = []
    for card in cards.values():
        latency = model.predict(card.profile) if model is not None else None
        if latency is not None and latency > budget_ms:
            continue
        ranked.append(engine.Candidate(id=card.id, score=0.0, metric=None, latency_ms=latency, latency_basis=model.basis if model else "",
                                       params_m=card.params_m, size_mb=engine.size_mb(card, tgt.precision), card=card))
    ranked.sort(key=lambda c: (c.latency_ms is None, c.latency_ms or 0.0))
    for c in ranked:
        c.reasons = engine.reasons_line(c, budget_ms, task)
    return ranked
