"""Fixtures of the example plugin's own tests (they need only visiontl and this package)."""

from __future__ import annotations

from pathlib import Path

import pytest
from visiontl.testing import plugins_for

import visiontl_example


@pytest.fixture
def plugins():
    """The core plus this plugin only: the tests do not depend on what else is installed."""
    return plugins_for(visiontl_example, name="example")


@pytest.fixture
def installed():
    """Every installed plugin, this one among them (the tests run with the package installed,
    as a user's plugin would be): the multilabel task meets the built-in families (timm,
    torchvision ...). Made the process-wide manager, as it is in a real process."""
    from visiontl.plugin_manager import build_plugin_manager, set_plugins

    plugins = build_plugin_manager()
    assert any(s.name == "example" and s.status == "ok" for s in plugins.statuses), "install the example first: pip install -e ."
    set_plugins(plugins)
    yield plugins
    set_plugins(None)


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated multi-label dataset (48 train, 24 val images, 32 px)."""
    from visiontl_example.data import make_shapes

    return make_shapes(tmp_path_factory.mktemp("data") / "shapes", train=48, val=24, size=32)
