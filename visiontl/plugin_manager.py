"""Discovering, loading and reporting plugins.

The manager is built inside :func:`build_plugin_manager`, never at import. Plugins come from
the entry-point group ``visiontl`` (the built-in ones included) plus the core's own default
implementations. A plugin that fails to import, or whose required libraries are missing, is
recorded with its error and an install hint; it never takes the other commands down.

Environment switches (in the style of pytest and tox):

* ``VISIONTL_DISABLE_PLUGINS=a,b`` blocks the named plugins.
* ``VISIONTL_TRACE_PLUGINS=1`` prints every hook call and result to stderr.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from visiontl import hookspecs
from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup, PluginInfo
from visiontl.errors import PluginError

ENTRY_POINT_GROUP = "visiontl"
CORE_PLUGIN_NAME = "core"

# Install lines for the families the project knows of, used when no plugin serves one.
KNOWN_FAMILY_HINTS = {
    "timm": "pip install 'visiontl[timm]'",
    "torchvision": "pip install 'visiontl[torchvision]'",
    "ultralytics": "pip install 'visiontl[ultralytics]'",
    "smp": "pip install 'visiontl[smp]'",
}
# Missing modules mapped to the extra that brings them, for import-failure hints.
MODULE_EXTRAS = {
    "timm": "timm",
    "torchvision": "torchvision",
    "ultralytics": "ultralytics",
    "segmentation_models_pytorch": "smp",
}


@dataclass
class PluginStatus:
    """One row of ``visiontl plugins``.

    Attributes:
        name: entry-point name (or ``core``).
        module: the module the entry point names.
        distribution: the installed distribution that ships it, if known.
        version: its version.
        status: ``ok``, ``disabled``, ``failed`` (import error) or ``missing`` (a required
            library is not installed).
        error: the reason for ``failed``/``missing``.
        hint: how to fix it.
        hooks: hook names it implements.
        info: what it says about itself.
    """

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    status: str = "ok"
    error: str | None = None
    hint: str | None = None
    hooks: list[str] = field(default_factory=list)
    info: PluginInfo | None = None

    @property
    def families(self) -> tuple[str, ...]:
        return self.info.families if self.info else ()

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.info.tasks if self.info else ()

    @property
    def outputs(self) -> tuple[str, ...]:
        """Output contracts its models provide for any task (``PluginInfo.outputs``)."""
        return self.info.outputs if self.info else ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "hint": self.hint,
            "families": list(self.families),
            "tasks": list(self.tasks),
            "outputs": list(self.outputs),
            "hooks": list(self.hooks),
        }


class Plugins:
    """The loaded plugin manager plus what discovery found.

    Attributes:
        pm: the pluggy manager; call hooks as ``plugins.hook.visiontl_build(request=...)``.
        statuses: every plugin seen, loaded or not, in discovery order.
    """

    def __init__(self, pm: pluggy.PluginManager, statuses: list[PluginStatus]) -> None:
        self.pm = pm
        self.statuses = statuses

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def ok(self) -> list[PluginStatus]:
        """Plugins that loaded and whose requirements are installed."""
        return [s for s in self.statuses if s.status == "ok"]

    def families(self) -> dict[str, PluginStatus]:
        """Family name -> the plugin serving it (first loaded wins)."""
        out: dict[str, PluginStatus] = {}
        for status in self.ok():
            for fam in status.families:
                out.setdefault(fam, status)
        return out

    def families_providing(self, output: str) -> list[str]:
        """Families whose plugin declares that its models provide ``output`` for any task."""
        return sorted(fam for fam, status in self.families().items() if output and output in status.outputs)

    def require_family(self, family: str) -> PluginStatus:
        """The plugin serving ``family``, or a :class:`PluginError` that says how to get one."""
        served = self.families()
        if family in served:
            return served[family]
        for status in self.statuses:
            if family in status.families or status.name == family:
                raise PluginError(
                    f"The plugin '{status.name}' for family '{family}' is {status.status}: "
                    f"{status.error or 'blocked by VISIONTL_DISABLE_PLUGINS'}.",
                    fix=status.hint or "see: visiontl plugins",
                )
        installed = ", ".join(sorted(served)) or "none"
        raise PluginError(
            f"No installed plugin handles family '{family}'. Installed: {installed}.",
            fix=KNOWN_FAMILY_HINTS.get(family, "install a plugin that provides it; see: visiontl plugins"),
        )


def _disabled_from_env() -> set[str]:
    raw = os.environ.get("VISIONTL_DISABLE_PLUGINS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _missing_requirements(requires: Iterable[str]) -> list[str]:
    """Requirement strings whose distribution is not installed or too old."""
    missing = []
    for req in requires:
        name = re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0]
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(req)
            continue
        spec = req[len(name):].strip()
        if spec:
            try:
                from packaging.specifiers import SpecifierSet

                if installed not in SpecifierSet(spec):
                    missing.append(f"{req} (found {installed})")
            except ImportError:  # pragma: no cover - packaging ships with pip/setuptools
                pass
    return missing


def _import_hint(error: BaseException, dist: str | None, module: str) -> str:
    missing = getattr(error, "name", None)
    if isinstance(error, ModuleNotFoundError) and missing:
        root = missing.split(".")[0]
        if root == module.split(".")[0].split(":")[0]:
            owner = dist or "the distribution that declares it"
            return f"the plugin's own package '{root}' is not installed: reinstall {owner}, or remove the stale entry point"
        if root in MODULE_EXTRAS:
            return f"pip install 'visiontl[{MODULE_EXTRAS[root]}]'"
        return f"pip install {root}"
    if dist:
        return f"reinstall or upgrade it: pip install --upgrade {dist}"
    return "check the plugin's installation"


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    callers = pm.get_hookcallers(plugin) or []
    return sorted(c.name for c in callers)


def _trace(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, hook_impls: list[Any], kwargs: dict[str, Any]) -> None:
        names = [impl.plugin_name for impl in hook_impls]
        print(f"[visiontl trace] {hook_name}({', '.join(kwargs)}) -> {names}", file=sys.stderr)

    def after(outcome: Any, hook_name: str, hook_impls: list[Any], kwargs: dict[str, Any]) -> None:
        try:
            result = outcome.get_result()
        except BaseException as exc:  # noqa: BLE001 - tracing only reports
            result = f"raised {type(exc).__name__}: {exc}"
        text = repr(result)
        print(f"[visiontl trace] {hook_name} returned {text[:200]}", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def build_plugin_manager(
    extra_plugins: Iterable[tuple[str, object]] = (),
    *,
    disabled: Iterable[str] | None = None,
    entry_points: bool = True,
) -> Plugins:
    """Discover and register plugins.

    Args:
        extra_plugins: ``(name, module_or_object)`` pairs registered after the entry points
            (tests use this to load a plugin under development).
        disabled: plugin names to block; defaults to ``VISIONTL_DISABLE_PLUGINS``.
        entry_points: read the ``visiontl`` entry-point group.

    Returns:
        A :class:`Plugins` with the manager and one status per plugin seen.
    """
    from visiontl import core_plugin

    blocked = set(disabled) if disabled is not None else _disabled_from_env()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    statuses: list[PluginStatus] = []

    # The core's defaults go first in registration order, which pluggy calls last.
    pm.register(core_plugin, name=CORE_PLUGIN_NAME)
    core_status = PluginStatus(name=CORE_PLUGIN_NAME, module=core_plugin.__name__)
    statuses.append(core_status)

    candidates: list[tuple[str, str, str | None, str | None, Any]] = []
    if entry_points:
        seen: set[str] = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(ep.name)
            dist = ep.dist.name if ep.dist else None
            version = ep.dist.version if ep.dist else None
            candidates.append((ep.name, ep.value, dist, version, ep))
    for name, obj in extra_plugins:
        module = getattr(obj, "__name__", type(obj).__name__)
        candidates.append((name, module, None, None, obj))

    for name, module, dist, version, source in candidates:
        status = PluginStatus(name=name, module=module, distribution=dist, version=version)
        statuses.append(status)
        if name in blocked:
            status.status = "disabled"
            status.hint = f"remove '{name}' from VISIONTL_DISABLE_PLUGINS"
            continue
        try:
            plugin = source.load() if isinstance(source, metadata.EntryPoint) else source
            pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported, not raised
            status.status = "failed"
            status.error = f"{type(exc).__name__}: {exc}"
            status.hint = _import_hint(exc, dist, module)
            continue
        status.hooks = _hooks_of(pm, plugin)
        info = _plugin_info(plugin)
        if info is not None:
            status.info = info
            status.version = info.version or status.version
            missing = _missing_requirements(info.requires)
            if missing:
                status.status = "missing"
                status.error = "not installed: " + ", ".join(missing)
                status.hint = info.install_hint or f"pip install {' '.join(missing)}"
                pm.unregister(plugin)

    core_status.hooks = _hooks_of(pm, core_plugin)
    core_status.info = _plugin_info(core_plugin)
    core_status.version = _own_version()
    if os.environ.get("VISIONTL_TRACE_PLUGINS", "").strip() not in ("", "0"):
        _trace(pm)
    return Plugins(pm, statuses)


def _plugin_info(plugin: object) -> PluginInfo | None:
    fn = getattr(plugin, "visiontl_plugin_info", None)
    if fn is None:
        return None
    info = fn()
    return info if isinstance(info, PluginInfo) else None


def _own_version() -> str:
    try:
        return metadata.version("visiontl")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


_CACHED: Plugins | None = None


def get_plugins(refresh: bool = False) -> Plugins:
    """The process-wide plugin manager, built on first use."""
    global _CACHED
    if _CACHED is None or refresh:
        _CACHED = build_plugin_manager()
    return _CACHED


def set_plugins(plugins: Plugins | None) -> None:
    """Replace the process-wide manager (tests and embedding applications)."""
    global _CACHED
    _CACHED = plugins


def build_with_groups(request: BuildRequest, plugins: Plugins | None = None) -> tuple[BuiltModel, list[LayerGroup]]:
    """Build a model of any installed family, exactly as the core would, with its layer groups.

    For a plugin whose models contain another family's (a detector or segmenter over a
    ``timm:`` or ``torchvision:`` backbone; a wrapper around a built-in classifier): ask for
    the other model here instead of importing the other plugin. The request's ``output`` is
    filled from its task when empty (:func:`visiontl.tasks.registry.output_of`).

    Args:
        request: what to build (any family; ``task`` decides the output the family builds).
        plugins: the manager to ask (default: the process-wide one, :func:`get_plugins`).

    Returns:
        The :class:`~visiontl.contracts.BuiltModel` and its layer groups, checked to cover
        every parameter once.

    Raises:
        PluginError: no installed plugin serves the family (with the install hint), or none
            built the model or described its groups.
        UnknownModelError, WeightsError, ConfigError: from the family's plugin.

    Example:
        >>> from visiontl.contracts import BuildRequest
        >>> from visiontl.ids import parse_model_id
        >>> built, groups = build_with_groups(BuildRequest(parse_model_id("timm:resnet10t"), "classification", 2))  # doctest: +SKIP
        >>> groups[-1].role  # doctest: +SKIP
        'head'
    """
    import dataclasses

    from visiontl.freeze.apply import check_groups
    from visiontl.tasks.registry import output_of

    plugins = plugins or get_plugins()
    plugins.require_family(request.model_id.family)
    if not request.output:
        request = dataclasses.replace(request, output=output_of(request.task, plugins=plugins))
    built = plugins.hook.visiontl_build(request=request)
    if built is None:
        raise PluginError(f"No plugin built '{request.model_id}' for task '{request.task}'.", fix="see: visiontl plugins")
    built.output = built.output or request.output
    groups = list(plugins.hook.visiontl_freeze(built=built) or [])
    if not groups:
        raise PluginError(f"The plugin for '{request.model_id.family}' described no layer groups for '{request.model_id}'.")
    check_groups(built.model, groups)
    return built, groups


def module_available(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    return importlib.util.find_spec(name) is not None


__all__ = [
    "ENTRY_POINT_GROUP",
    "build_with_groups",
    "PluginStatus",
    "Plugins",
    "build_plugin_manager",
    "get_plugins",
    "set_plugins",
    "module_available",
]
