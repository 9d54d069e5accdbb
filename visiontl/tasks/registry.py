"""The registered tasks: every ``TaskAdapter`` the installed plugins contribute, by name.

One place answers "which task is this name", with did-you-mean, for every command that takes
a task (``run``, ``select``, ``models``, the contract kit), and "which output does this task
need" for the families that build by output contract. Nothing here imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visiontl.errors import PluginError
from visiontl.ids import suggest

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.plugin_manager import Plugins
    from visiontl.tasks.base import TaskAdapter


def tasks(plugins: Plugins) -> dict[str, TaskAdapter]:
    """Every task the installed plugins define, by name.

    Raises:
        PluginError: two plugins define the same task name.
    """
    out: dict[str, TaskAdapter] = {}
    for contributed in plugins.hook.visiontl_tasks():
        for task in contributed or []:
            if task.name in out:
                raise PluginError(f"Two plugins define the task '{task.name}'.", fix="disable one with VISIONTL_DISABLE_PLUGINS")
            out[task.name] = task
    return out


def resolve_task(plugins: Plugins, name: str) -> TaskAdapter:
    """The task adapter for ``name``, or an error with did-you-mean and the installed tasks.

    Raises:
        PluginError: no installed plugin defines ``name``.

    Example:
        >>> from visiontl.plugin_manager import get_plugins
        >>> resolve_task(get_plugins(), "classification").primary_metric
        'accuracy'
    """
    known = tasks(plugins)
    if name in known:
        return known[name]
    close = suggest(name, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise PluginError(
        f"Unknown task '{name}'.{hint} Installed tasks: {', '.join(sorted(known))}.",
        fix="use one of them, or install the plugin that provides it (see: visiontl plugins)",
    )


def find_task(name: str | None, plugins: Plugins | None = None) -> TaskAdapter | None:
    """The adapter for ``name`` (default manager: the process-wide one), ``None`` if unknown."""
    if not name:
        return None
    if plugins is None:
        from visiontl.plugin_manager import get_plugins

        plugins = get_plugins()
    return tasks(plugins).get(name)


def output_of(task: str | None, given: str = "", plugins: Plugins | None = None) -> str:
    """The output contract ``task`` needs from a model: ``given`` when the caller said
    (``BuildRequest.output``), else the registered task's ``TaskAdapter.output``, else ``""``.

    Families call it to decide what to build for a task they do not know by name.

    Example:
        >>> output_of("classification")
        'image_vector'
    """
    if given:
        return given
    adapter = find_task(task, plugins)
    return adapter.output if adapter is not None else ""


def tasks_with_output(output: str, plugins: Plugins) -> list[str]:
    """The registered tasks whose models provide ``output`` (sorted; none for ``""``)."""
    if not output:
        return []
    return sorted(name for name, adapter in tasks(plugins).items() if adapter.output == output)


__all__ = ["find_task", "output_of", "resolve_task", "tasks", "tasks_with_output"]
