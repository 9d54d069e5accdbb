"""The model catalogue: cards gathered from every plugin, and every buildable id."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visiontl.cards import Figure, ModelCard
from visiontl.plugin_manager import Plugins, get_plugins


def catalogue(task: str | None = None, family: str | None = None, plugins: Plugins | None = None) -> list[ModelCard]:
    """Cards offered by the plugins, optionally for one task and one family."""
    plugins = plugins or get_plugins()
    if task:
        names = [task]
    else:
        # Only the full listing needs the task registry (and the recipe schema api imports):
        # one task's answer, what `visiontl select` asks, stays light.
        from visiontl.api import tasks

        names = sorted(tasks(plugins))
    seen: set[str] = set()
    cards: list[ModelCard] = []
    for name in names:
        for offered in plugins.hook.visiontl_select(task=name):
            for card in offered or []:
                if family and card.family != family:
                    continue
                if card.id not in seen:
                    seen.add(card.id)
                    cards.append(card)
    return cards


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
