"""Discovery, blocking, tracing and failure reporting of plugins."""

from __future__ import annotations

import importlib.metadata as md

import pytest

from visiontl import hookimpl, hookspecs
from visiontl.contracts import PluginInfo
from visiontl.errors import PluginError
from visiontl.plugin_manager import build_plugin_manager


def test_builtin_plugins_come_through_the_entry_point_group():
    eps = {ep.name: ep.value for ep in md.entry_points(group="visiontl")}
    assert eps["timm"] == "visiontl_timm" and eps["torchvision"] == "visiontl_torchvision"
    plugins = build_plugin_manager()
    by_name = {s.name: s for s in plugins.statuses}
    assert by_name["timm"].status == "ok" and by_name["timm"].distribution == "visiontl"
    assert "visiontl_build" in by_name["timm"].hooks and "visiontl_freeze" in by_name["timm"].hooks
    assert by_name["core"].status == "ok"
    assert plugins.families()["timm"].name == "timm"


def test_disable_env_blocks_a_plugin(monkeypatch):
    monkeypatch.setenv("VISIONTL_DISABLE_PLUGINS", "timm, other")
    plugins = build_plugin_manager()
    status = {s.name: s.status for s in plugins.statuses}
    assert status["timm"] == "disabled"
    assert "timm" not in plugins.families()
    with pytest.raises(PluginError, match="VISIONTL_DISABLE_PLUGINS"):
        plugins.require_family("timm")


def test_import_failure_is_reported_with_a_hint_and_others_still_work():
    broken = md.EntryPoint(name="broken", value="visiontl_no_such_module_xyz", group="visiontl")
    plugins = build_plugin_manager([("broken", broken)])
    status = {s.name: s for s in plugins.statuses}
    assert status["broken"].status == "failed"
    assert "ModuleNotFoundError" in status["broken"].error
    assert "visiontl_no_such_module_xyz" in status["broken"].hint
    assert status["timm"].status == "ok"


def test_missing_requirement_is_reported_and_the_plugin_unregistered():
    class NeedsSomething:
        @hookimpl
        def visiontl_plugin_info(self):
            return PluginInfo(name="needy", families=("needy",), tasks=("classification",), requires=("definitely-not-installed-pkg>=1",), install_hint="pip install needy-extra")

        @hookimpl
        def visiontl_build(self, request):
            raise AssertionError("must not be called")

    plugins = build_plugin_manager([("needy", NeedsSomething())])
    status = {s.name: s for s in plugins.statuses}["needy"]
    assert status.status == "missing" and "definitely-not-installed-pkg" in status.error
    with pytest.raises(PluginError) as info:
        plugins.require_family("needy")
    assert "pip install needy-extra" in str(info.value)


def test_unknown_family_names_installed_ones_and_install_line():
    plugins = build_plugin_manager()
    with pytest.raises(PluginError) as info:
        plugins.require_family("ultralytic")
    assert "Installed:" in str(info.value) and "timm" in str(info.value)
    with pytest.raises(PluginError, match=r"visiontl\[smp\]"):
        build_plugin_manager(disabled=["smp"], entry_points=False).require_family("smp")


def test_tracing_prints_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv("VISIONTL_TRACE_PLUGINS", "1")
    plugins = build_plugin_manager()
    plugins.hook.visiontl_model_names(family="timm", task="detection")
    err = capsys.readouterr().err
    assert "[visiontl trace] visiontl_model_names(family, task)" in err
    assert "returned []" in err


def test_every_hook_is_documented():
    import inspect

    specs = [n for n in dir(hookspecs) if n.startswith("visiontl_")]
    assert {"visiontl_select", "visiontl_build", "visiontl_freeze", "visiontl_train", "visiontl_benchmark", "visiontl_on_phase_start", "visiontl_on_phase_end", "visiontl_on_epoch_end"} <= set(specs)
    for name in specs:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Returns" in doc or "ignored" in doc, name
        assert "firstresult" in doc or "1:N" in doc, name
