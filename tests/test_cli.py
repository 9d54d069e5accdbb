"""The command line: CliRunner for behaviour, one real subprocess, and no torch on --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from conftest import ROOT, tiny_recipe
from visiontl.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write_recipe(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_help_imports_no_torch():
    code = "import sys; from visiontl.cli import cli; heavy = [m for m in ('torch', 'timm', 'torchvision', 'ultralytics', 'segmentation_models_pytorch') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    code = "import sys\nfrom click.testing import CliRunner\nfrom visiontl.cli import cli\nfor args in (['--help'], ['plugins'], ['run', '--help']):\n    r = CliRunner().invoke(cli, args)\n    assert r.exit_code == 0, r.output\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_config_validate_ok_and_typo(tmp_path, shapes_root):
    good = write_recipe(tmp_path, tiny_recipe(shapes_root, tmp_path))
    result = invoke("config", "validate", str(good))
    assert result.exit_code == 0 and "valid" in result.output
    bad = tiny_recipe(shapes_root, tmp_path)
    bad["train"]["epocs"] = 3
    result = CliRunner().invoke(cli, ["config", "validate", str(write_recipe(tmp_path, bad))])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "train.epocs: unknown key; did you mean 'epochs'?" in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["--debug", "config", "validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code != 0 and result.exception is not None


def test_config_schema_is_json():
    schema = json.loads(invoke("config", "schema").output)
    assert schema["title"] == "Recipe"


def test_plugins_json():
    rows = json.loads(invoke("plugins", "--json").output)
    names = {r["name"]: r for r in rows}
    assert names["timm"]["status"] == "ok" and "classification" in names["timm"]["tasks"]


def test_models_lists_cards_and_all_ids():
    result = invoke("models", "--family", "timm")
    assert "timm:efficientnet_b0" in result.output
    ids = json.loads(invoke("models", "--family", "timm", "--all", "--json").output)
    assert "resnet18" in ids["timm"] and len(ids["timm"]) > 500


def test_unknown_model_in_recipe_gives_did_you_mean(tmp_path, shapes_root):
    recipe = tiny_recipe(shapes_root, tmp_path, model={"id": "timm:resnt10t"})
    result = CliRunner().invoke(cli, ["run", str(write_recipe(tmp_path, recipe)), "--dry-run"])
    assert result.exit_code == 1
    assert "Did you mean 'timm:resnet10t'" in result.output and "visiontl models --family timm" in result.output


def test_dry_run_prints_the_plan(tmp_path, shapes_root):
    recipe = tiny_recipe(shapes_root, tmp_path, strategy={"name": "progressive", "phase_epochs": [1, 1, 2]}, optimizer={"lr": [1e-4, 1e-2]})
    result = invoke("run", str(write_recipe(tmp_path, recipe)), "--dry-run")
    assert result.exit_code == 0
    assert "Phase 1/3 'head'" in result.output and "Phase 3/3 'all'" in result.output
    assert "1.00e-02" in result.output and "eval (stats fixed)" in result.output
    assert not (tmp_path / "classification").exists()  # a dry run writes nothing


def test_run_set_predict_eval(tmp_path, shapes_root):
    path = write_recipe(tmp_path, tiny_recipe(shapes_root, tmp_path / "runs"))
    result = invoke("run", str(path), "--set", "train.epochs=1", "--set", "output.name=cli")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "classification" / "cli"
    assert "Best     accuracy" in result.output and str(run_dir) in result.output
    image = next((shapes_root / "val" / "circle").glob("*.png"))
    pred = invoke("predict", str(run_dir), str(image), "--topk", "2", "--json")
    top = json.loads(pred.output)[0]["top"]
    assert len(top) == 2 and {name for name, _ in top} <= {"circle", "square", "triangle"}
    metrics = json.loads(invoke("eval", str(run_dir), "--json").output)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["num_samples"] == 18
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    failed = invoke("predict", str(run_dir), str(bad))
    assert failed.exit_code == 1 and "bad.png: unreadable" in failed.output and "None of the 1 image(s) could be read" in failed.output


def test_real_subprocess_run(tmp_path, shapes_root):
    """The installed console script, end to end."""
    path = write_recipe(tmp_path, tiny_recipe(shapes_root, tmp_path / "runs", train={"epochs": 1}))
    exe = Path(sys.executable).parent / "visiontl"
    env = {**os.environ, "VISIONTL_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([str(exe), "run", str(path)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Best     accuracy" in proc.stdout
    bad = subprocess.run([str(exe), "run", str(tmp_path / "nope.yaml")], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("visiontl: error: Recipe file") and "Traceback" not in bad.stderr
