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


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated multi-label dataset (48 train, 24 val images, 32 px)."""
    from visiontl_example.data import make_shapes

    return make_shapes(tmp_path_factory.mktemp("data") / "shapes", train=48, val=24, size=32)
