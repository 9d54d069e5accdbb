"""Shared fixtures: the shared datasets (skip or fail), tiny generated datasets, isolation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("VISIONTL_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $VISIONTL_SHARED_DATA). Skips when absent, unless
    VISIONTL_REQUIRE_SHARED_DATA=1 (CI), where absence is a failure."""
    path = _shared_data_dir()
    if not (path / "README.md").is_file():
        if os.environ.get("VISIONTL_REQUIRE_SHARED_DATA", "") not in ("", "0"):
            pytest.fail(f"shared data required (VISIONTL_REQUIRE_SHARED_DATA=1) but not found at {path}")
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def squeezenet_weights(shared_data: Path) -> Path:
    path = shared_data / "weights" / "squeezenet1_1_imagenet_features.pth"
    assert path.is_file(), f"missing {path}"
    return path


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs go to a temporary folder; the global plugin manager is rebuilt per test."""
    from visiontl.plugin_manager import set_plugins

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("VISIONTL_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("VISIONTL_TRACE_PLUGINS", raising=False)
    set_plugins(None)
    yield
    set_plugins(None)


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic ImageFolder dataset (3 classes, 12 train + 6 val images each)."""
    from visiontl.data.synthetic import make_shapes

    return make_shapes(tmp_path_factory.mktemp("shapes") / "shapes", per_class_train=12, per_class_val=6, size=32)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (restored after): on shared, busy cores two threads per
    process can spin against each other and run tens of times slower.

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_recipe(root: Path, out: Path, **sections: dict) -> dict:
    """A recipe dict for fast tests on ``root`` (resnet10t at 32 px, 2 epochs)."""
    recipe = {
        "task": "classification",
        "data": {"format": "imagefolder", "root": str(root), "image_size": 32},
        "model": {"id": "timm:resnet10t"},
        "strategy": {"name": "feature_extraction"},
        "optimizer": {"lr": 0.01},
        "augmentation": {"preset": "none"},
        "train": {"epochs": 2, "batch_size": 8, "progress": False, "seed": 0},
        "output": {"dir": str(out), "name": "t", "plots": False},
    }
    for key, value in sections.items():
        recipe.setdefault(key, {})
        recipe[key] = {**recipe[key], **value} if isinstance(value, dict) else value
    return recipe


def train_tiny_run(tmp_path_factory: pytest.TempPathFactory, shapes_root: Path, folder: str, epochs: int) -> Path:
    """Train a tiny classification run (resnet10t, 32 px, one thread) on the shapes dataset
    into a fresh folder and return its run directory (for module-scoped fixtures)."""
    from visiontl import api
    from visiontl.config.loader import validate_recipe
    from visiontl.plugin_manager import set_plugins

    set_plugins(None)
    out = tmp_path_factory.mktemp(folder)
    recipe = validate_recipe(tiny_recipe(shapes_root, out, train={"epochs": epochs, "threads": 1}), "test")
    return api.run(recipe).run_dir
