"""The model catalogue: cards gathered from every plugin, and every buildable id."""

from __future__ import annotations

from visiontl.cards import ModelCard
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
