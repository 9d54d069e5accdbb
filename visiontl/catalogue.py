"""The model catalogue: cards gathered from every plugin, and every buildable id."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from visiontl.cards import Figure, ModelCard
from visiontl.plugin_manager import Plugins, get_plugins


def catalogue(task: str | None = None, family: str | None = None, plugins: Plugins | None = None) -> list[ModelCard]:
    """Cards offered by the plugins, optionally for one task and one family.

    For one task, the cards are those offered for it, plus those offered for the other tasks
    whose models give the same output (``TaskAdapter.output``) by families that provide that
    output for any task (``PluginInfo.outputs``): a new image-level regression task gets the
    timm and torchvision classifiers' cards. Every card returned for a task lists that task.
    """
    from visiontl.tasks.registry import tasks

    plugins = plugins or get_plugins()
    names = [task] if task else sorted(tasks(plugins))
    seen: set[str] = set()
    cards: list[ModelCard] = []
    for name in names:
        for offered in plugins.hook.visiontl_select(task=name):
            for card in offered or []:
                if family and card.family != family:
                    continue
                if card.id not in seen:
                    seen.add(card.id)
                    # A plugin that offers a card for a task serves that task.
                    cards.append(card if not task or task in card.tasks else replace(card, tasks=(*card.tasks, task)))
    if task:
        cards += _same_output_cards(task, family, plugins, seen)
    return cards


def _same_output_cards(task: str, family: str | None, plugins: Plugins, seen: set[str]) -> list[ModelCard]:
    """Cards of the other tasks of ``task``'s output, from the families that provide that
    output for any task, listed for ``task`` too."""
    from visiontl.tasks.registry import find_task, tasks_with_output

    adapter = find_task(task, plugins)
    output = adapter.output if adapter is not None else ""
    providers = set(plugins.families_providing(output))
    if family:
        providers &= {family}
    out: list[ModelCard] = []
    for other in tasks_with_output(output, plugins) if providers else []:
        if other == task:
            continue
        for offered in plugins.hook.visiontl_select(task=other):
            for card in offered or []:
                if card.family in providers and card.id not in seen:
                    seen.add(card.id)
                    out.append(replace(card, tasks=(*card.tasks, task)))
    return out


def buildable_ids(task: str | None = None, family: str | None = None, plugins: Plugins | None = None) -> dict[str, list[str]]:
    """Family -> every model name its plugin can build (for ``--all`` and did-you-mean)."""
    plugins = plugins or get_plugins()
    if family:
        plugins.require_family(family)
    out: dict[str, list[str]] = {}
    for fam in sorted(plugins.families()):
        if family and fam != family:
            continue
        names = plugins.hook.visiontl_model_names(family=fam, task=task)
        if names:
            out[fam] = sorted(names)
    return out


def encoder_proxy(candidates: Sequence[str], classifiers: dict[str, ModelCard]) -> tuple[Figure | None, str]:
    """The ``encoder_top1`` proxy of a dense model: the ImageNet top-1 of the first of
    ``candidates`` (classification card ids) found in ``classifiers``.

    Returns:
        The figure (``None`` when no candidate has a top-1 figure) and the id it came from
        (empty when none).
    """
    for card_id in candidates:
        card = classifiers.get(card_id)
        top1 = card.metric("top1") if card is not None else None
        if top1 is not None:
            source = f"proxy: ImageNet top-1 of {card_id} ({top1.source})"
            return Figure(name="encoder_top1", value=top1.value, dataset=top1.dataset, source=source), card_id
    return None, ""


def classification_cards_by_id() -> dict[str, ModelCard]:
    """Every installed classification card, by id (the source of encoder proxies)."""
    return {c.id: c for c in catalogue(task="classification")}


def write_or_check(path: Path, entries: list[dict[str, Any]], module: str, argv: list[str] | None = None) -> int:
    """The ``main`` of a plugin's catalogue generator: write ``entries`` to ``path`` as JSON,
    or with ``--check`` in ``argv`` only compare and say whether the file is current.

    Returns:
        The exit status: 0 when written or current, 1 when stale.
    """
    argv = sys.argv[1:] if argv is None else argv
    text = json.dumps(entries, indent=1) + "\n"
    if "--check" in argv:
        same = path.is_file() and path.read_text(encoding="utf-8") == text
        print(f"{path.name} is current" if same else f"{path.name} is stale: run python -m {module}")
        return 0 if same else 1
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({len(entries)} cards)", file=sys.stderr)
    return 0
