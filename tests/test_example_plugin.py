"""The example third-party plugin (docs/examples/visiontl-example-plugin), installed for real.

The package is built and installed with pip, offline (``--no-index --no-deps
--no-build-isolation``), into a temporary ``--target`` folder: nothing in the virtual
environment or the source tree changes, and other tests never see the plugin. Processes that
put that folder on ``PYTHONPATH`` find the plugin the way any installed plugin is found,
through its ``visiontl`` entry point; the checks below run the real ``visiontl`` command in
such processes: ``plugins``, ``models``, ``select``, ``run`` and ``predict``, then the
example's own test suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

EXAMPLE = ROOT / "docs" / "examples" / "visiontl-example-plugin"
EXAMPLE_IDS = {"tinycnn:nano", "tinycnn:micro", "tinycnn:small"}


def _visiontl() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m visiontl``."""
    script = shutil.which("visiontl", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "visiontl"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Install a copy of the example (a copy: setuptools writes build/ and *.egg-info beside
    the sources) into a temporary target; return what the tests need to use it."""
    import importlib.util

    # --no-build-isolation builds with this environment's setuptools (visiontl's own build
    # backend); Python 3.12+ virtual environments do not bring it along.
    assert importlib.util.find_spec("setuptools") is not None, "building the example offline needs setuptools here: pip install setuptools"
    work = tmp_path_factory.mktemp("example_plugin")
    source = work / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "data", "runs"))
    target = work / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-index", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)]
    proc = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip could not install the example plugin offline:\n{proc.stderr[-3000:]}"
    assert (target / "visiontl_example" / "catalogue.json").is_file(), "the package data was not installed"
    env = {k: v for k, v in os.environ.items() if k not in ("VISIONTL_DISABLE_PLUGINS", "VISIONTL_TRACE_PLUGINS")}
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH", "")) if p),
        VISIONTL_DATA_DIR=str(work / "data"),
        MPLBACKEND="Agg",
    )
    return {"env": env, "source": source, "work": work}


def visiontl(installed: dict, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([*_visiontl(), *args], capture_output=True, text=True, env=installed["env"], cwd=installed["work"], timeout=timeout)
    assert proc.returncode == 0, f"visiontl {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_the_plugin_is_listed_with_its_distribution(installed):
    rows = {r["name"]: r for r in json.loads(visiontl(installed, "plugins", "--json").stdout)}
    example = rows["example"]
    assert example["status"] == "ok", example
    assert (example["distribution"], example["version"]) == ("visiontl-example-plugin", "0.1.0")
    assert example["families"] == ["tinycnn"] and example["tasks"] == ["multilabel"]
    assert {"visiontl_tasks", "visiontl_select", "visiontl_build", "visiontl_freeze", "visiontl_model_names"} <= set(example["hooks"])
    table = visiontl(installed, "plugins").stdout
    assert any(line.split()[:2] == ["example", "0.1.0"] for line in table.splitlines())


def test_the_plugin_is_not_seen_without_the_install():
    from visiontl.plugin_manager import build_plugin_manager

    assert "example" not in {s.name for s in build_plugin_manager().statuses}


def test_models_lists_the_cards_with_their_mac_profiles(installed):
    listed = json.loads(visiontl(installed, "models", "--task", "multilabel", "--json").stdout)
    cards = [c for c in listed if c["id"].startswith("tinycnn:")]
    assert {c["id"] for c in cards} == EXAMPLE_IDS
    # The task wants an image-level vector: the built-in families that provide one for any
    # task are offered for it too, each card listing the task.
    assert {c["id"].split(":")[0] for c in listed} >= {"tinycnn", "timm", "torchvision"}
    assert all("multilabel" in c["tasks"] for c in listed) and not any(c["id"].startswith("smp:") for c in listed)
    stored = {c["id"]: c for c in json.loads((EXAMPLE / "src" / "visiontl_example" / "catalogue.json").read_text())}
    for card in cards:
        assert card["profile"]["macs"] > 0 and card["profile"] == stored[card["id"]]["profile"]
        assert card["tasks"] == ["classification", "multilabel"]
    ids = json.loads(visiontl(installed, "models", "--family", "tinycnn", "--all", "--json").stdout)
    assert ids == {"tinycnn": ["micro", "nano", "small"]}


def test_select_ranks_the_cards_by_predicted_latency(installed):
    out = json.loads(visiontl(installed, "select", "--task", "classification", "--target", "edge", "--max-params", "0.5", "--json").stdout)
    # Under 0.5 M parameters only the example's nano and micro models remain.
    assert [c["id"] for c in out["candidates"]] == ["tinycnn:nano", "tinycnn:micro"]
    assert all(c["latency_ms"] > 0 and "no published ImageNet top-1 figure" in c["reasons"] for c in out["candidates"])
    assert any(r["id"] == "tinycnn:small" and "M params > 0.5 M" in r["reason"] for r in out["rejected"])


def test_plugins_and_select_with_the_plugin_import_no_torch(installed):
    # The design's rule for the core holds with a third-party plugin installed: its module
    # imports torch only inside the hooks that build models. (`visiontl models` asks every
    # family for its buildable names, and timm's answer needs timm: it is not on the list.)
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from visiontl.cli import cli\n"
        "for args in (['plugins'], ['select', '--task', 'classification', '--max-params', '0.5']):\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    assert r.exit_code == 0, r.output\n"
        "    assert 'tinycnn' in r.output or 'example' in r.output, r.output\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=installed["env"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "False"


def test_run_trains_the_new_task_and_predict_uses_it(installed):
    recipe = installed["source"] / "recipes" / "multilabel_shapes.yaml"
    runs = installed["work"] / "runs"
    visiontl(installed, "run", str(recipe), "--set", "train.epochs=6", "--set", "train.threads=1",
             "--set", "train.progress=false", "--set", f"output.dir={runs}", timeout=600)
    run_dir = runs / "multilabel" / "multilabel_shapes"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["task"], summary["model_id"], summary["primary_metric"]) == ("multilabel", "tinycnn:micro", "map")
    assert summary["data"]["images"] == {"train": 240, "val": 90}  # generated by data.synthesize
    # Each shape is present in half the images: a model that learnt nothing scores a mAP of
    # about 0.5. Six epochs from scratch reach 0.9 and more on this machine.
    assert summary["best"]["map"] > 0.8, summary["best"]
    assert set(summary["final_details"]["per_class"]) == {"circle", "square", "triangle"}
    # The shared run layout, and the logger plugins listening to the same events.
    assert {"metrics.csv", "report.md", "summary.json", "events.csv"} <= {p.name for p in run_dir.iterdir()}
    image = installed["work"] / "data" / "multilabel_shapes" / "images" / "val" / "val_0001.png"
    out = visiontl(installed, "predict", str(run_dir), str(image), "--json").stdout
    (prediction,) = json.loads(out)
    assert set(prediction["details"]["scores"]) == {"circle", "square", "triangle"}
    assert all(score >= 0.5 for _, score in prediction["top"])


def test_the_example_passes_its_own_tests(installed):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], capture_output=True, text=True,
                          env=installed["env"], cwd=installed["source"], timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout and "skipped" not in proc.stdout
