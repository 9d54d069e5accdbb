"""No wrong success: corrupt checkpoints, non-finite weights and metrics, empty predictions,
overlay names, run names that escape, failed starts, provenance, temp files, timings, modes."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import tiny_recipe, train_tiny_run
from visiontl import api, hookimpl, log
from visiontl.cli import cli
from visiontl.config.loader import validate_recipe
from visiontl.errors import ConfigError, DataError, RunError
from visiontl.plugin_manager import build_plugin_manager
from visiontl.runs.layout import RunDir, atomic_write_text
from visiontl.tasks.classification import ClassificationTask
from visiontl.train.checkpoint import HASH_KEY, is_verified, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shapes_root) -> Path:
    """A tiny trained classification run (resnet10t, 32 px, 1 epoch on the shapes dataset)."""
    return train_tiny_run(tmp_path_factory, shapes_root, "reliability_runs", epochs=1)


def _copy_best(tiny_run: Path, tmp_path: Path) -> Path:
    path = tmp_path / "best.pt"
    shutil.copyfile(tiny_run / "checkpoints" / "best.pt", path)
    return path


# --------------------------------------------------------------------------- checkpoints


def test_bit_rot_inside_a_tensor_is_a_corrupt_checkpoint(tiny_run, tmp_path):
    path = _copy_best(tiny_run, tmp_path)
    ckpt = load_checkpoint(path)
    assert is_verified(ckpt)
    weight = max((t for t in ckpt["model"].values() if t.is_floating_point()), key=torch.Tensor.numel).contiguous()
    raw = path.read_bytes()
    at = raw.find(weight.numpy().tobytes())
    assert at > 0
    rotten = bytearray(raw)
    rotten[at + 10] ^= 0x40  # one bit of one float
    path.write_bytes(bytes(rotten))
    with pytest.raises(RunError, match="is corrupt") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    result = CliRunner().invoke(cli, ["eval", str(path)])
    assert result.exit_code == 1 and "is corrupt" in result.output and len(result.output.strip().splitlines()) == 1


def test_checkpoints_without_a_hash_still_load_unverified(tiny_run, tmp_path):
    ckpt = load_checkpoint(tiny_run / "checkpoints" / "best.pt")
    old = {k: v for k, v in ckpt.items() if k != HASH_KEY}
    torch.save(old, tmp_path / "old.pt")
    loaded = load_checkpoint(tmp_path / "old.pt")
    assert not is_verified(loaded) and torch.equal(loaded["model"]["fc.weight"], ckpt["model"]["fc.weight"])
    # a payload read back and changed is hashed again as it is now
    old["model"]["fc.bias"] = old["model"]["fc.bias"] + 1
    save_checkpoint(tmp_path / "changed.pt", old)
    assert is_verified(load_checkpoint(tmp_path / "changed.pt"))


def test_nan_weights_are_refused_naming_the_tensor(tiny_run, tmp_path):
    ckpt = load_checkpoint(tiny_run / "checkpoints" / "best.pt")
    ckpt["model"]["fc.weight"][0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", ckpt)
    with pytest.raises(RunError, match=r"NaN or Inf weights in fc\.weight"):
        api.load_trained(tmp_path / "nan.pt")


def test_non_finite_metrics_are_an_error(tiny_run, tmp_path):
    ckpt = load_checkpoint(tiny_run / "checkpoints" / "best.pt")
    ckpt["model"]["fc.weight"].fill_(3e38)  # finite weights, infinite logits
    save_checkpoint(tmp_path / "huge.pt", ckpt)
    with pytest.raises(RunError, match="non-finite metrics"):
        api.evaluate(tmp_path / "huge.pt")


# --------------------------------------------------------------------------- predict


def test_predict_on_a_folder_without_images_fails(tiny_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no image here")
    with pytest.raises(DataError, match="No image to predict") as err:
        api.predict(tiny_run, [empty])
    assert str(empty) in str(err.value) and ".jpg" in str(err.value) and ".png" in str(err.value)
    result = CliRunner().invoke(cli, ["predict", str(tiny_run), str(empty)])
    assert result.exit_code == 1 and "No image to predict" in result.output


def test_overlays_never_overwrite_each_other(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(ClassificationTask, "draw", lambda self, image, result, names: image)
    folder = tmp_path / "imgs"
    for rel, fmt in (("x.jpg", "JPEG"), ("x.png", "PNG"), ("a/y.png", "PNG"), ("b/y.png", "PNG")):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 40), (10, 200, 30)).save(folder / rel, fmt)
    out = tmp_path / "out"
    predictions = api.predict(tiny_run, [folder], out_dir=out)
    overlays = sorted(Path(p.overlay).relative_to(out).as_posix() for p in predictions)
    assert overlays == ["a/y.png.png", "b/y.png.png", "x.jpg.png", "x.png.png"]
    assert all(Path(p.overlay).is_file() for p in predictions)
    # two folders given side by side: named from their common folder
    two = api.predict(tiny_run, [folder / "a", folder / "b"], out_dir=tmp_path / "out2")
    assert sorted(Path(p.overlay).relative_to(tmp_path / "out2").as_posix() for p in two) == ["a/y.png.png", "b/y.png.png"]


# --------------------------------------------------------------------------- run directories


@pytest.mark.parametrize("name", ["../escape", "..", "/tmp/abs", "a/b", "a\\b", ".", ""])
def test_output_name_cannot_leave_the_runs_folder(tmp_path, name):
    base = tmp_path / "runs"
    with pytest.raises(ConfigError, match="not a plain folder name"):
        RunDir.create(base, "classification", name)
    assert not (tmp_path / "escape").exists() and not any(p.is_dir() for p in (base / "classification").glob("*"))


class Boom(Exception):
    pass


def test_a_failed_start_leaves_no_run_folder(shapes_root, tmp_path):
    class FailingTrainer:
        @hookimpl(tryfirst=True)
        def visiontl_train(self, job):
            raise Boom("trainer crashed")

    recipe = validate_recipe(tiny_recipe(shapes_root, tmp_path, train={"epochs": 1, "threads": 1}), "test")
    with pytest.raises(Boom):
        api.run(recipe, plugins=build_plugin_manager([("failing", FailingTrainer())]))
    assert list((tmp_path / "classification").iterdir()) == []
    assert RunDir.create(tmp_path, "classification", "t").path.name == "t"  # not pushed to t-2


def test_interrupted_run_keeps_status_then_resumes_with_its_start_time_and_total_time(shapes_root, tmp_path, monkeypatch):
    """After its first checkpoint a failed run stays, with status.json; resume cleans up temp
    files, keeps the original start, sums the training time; files get the normal mode;
    the data provenance is recorded in summary.json and checkpoints."""
    provenance = {"data_root": str(shapes_root), "splits": {"val": {"path": str(shapes_root / "val"), "files": 18, "sha256": "ab" * 32}}}
    inspect = ClassificationTask.inspect

    def inspect_with_provenance(self, recipe, data_root):
        info = inspect(self, recipe, data_root)
        info.provenance = provenance
        return info

    monkeypatch.setattr(ClassificationTask, "inspect", inspect_with_provenance)
    old_umask = os.umask(0o022)
    try:
        class StopAfterOne:
            @hookimpl
            def visiontl_on_epoch_end(self, run, phase, epoch, metrics):
                if epoch == 1:
                    raise Boom("power cut")

        recipe = validate_recipe(tiny_recipe(shapes_root, tmp_path, train={"epochs": 2, "threads": 1}), "test")
        with pytest.raises(Boom):
            api.run(recipe, plugins=build_plugin_manager([("stop", StopAfterOne())]))
        run_dir = tmp_path / "classification" / "t"
        status = json.loads((run_dir / "status.json").read_text())
        assert status["status"] == "failed" and "power cut" in status["error"] and status["resume"] == f"visiontl run --resume {run_dir}"
        first = load_checkpoint(run_dir / "checkpoints" / "last.pt")
        loop = first["train_state"]["loop"]
        assert loop["elapsed_s"] > 0 and loop["started"]
        assert first["data_provenance"] == provenance
        # what a crash in the middle of a write leaves behind, old and new temp names
        leftovers = [run_dir / "checkpoints" / ".last.pt.0a1b2c3d.tmp", run_dir / "checkpoints" / ".best.pt.k3j_9x2q", run_dir / ".summary.json.deadbeef.tmp"]
        for tmp in leftovers:
            tmp.write_bytes(b"half")

        resumed = api.resume(run_dir)
        assert not any(tmp.exists() for tmp in leftovers)
        assert not (run_dir / "status.json").exists()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["started"] == resumed.summary["started"]
        first_start = dt.datetime.fromisoformat(loop["started"]).isoformat(timespec="seconds")
        assert summary["started"] == first_start  # the first part's start, not the resume's
        timings = summary["timings_s"]
        assert timings["train_before_resume"] == pytest.approx(loop["elapsed_s"])
        assert timings["train_total"] > loop["elapsed_s"]
        assert summary["epochs_run"] == 2
        assert summary["data"]["provenance"] == provenance
        assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["data_provenance"] == provenance
        for name in ("summary.json", "recipe.yaml", "metrics.csv", "checkpoints/last.pt", "checkpoints/best.pt"):
            assert (run_dir / name).stat().st_mode & 0o777 == 0o644, name
    finally:
        os.umask(old_umask)


def test_atomic_writes_honour_the_umask(tmp_path):
    old_umask = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


# --------------------------------------------------------------------------- provenance


def test_eval_warns_when_the_data_differs_from_the_training_data(tiny_run, tmp_path, monkeypatch):
    ckpt = load_checkpoint(tiny_run / "checkpoints" / "best.pt")
    ckpt["data_provenance"] = {"splits": {"val": {"path": "/data/val", "files": 17, "sha256": "aa" * 32}, "train": {"files": 36, "sha256": "cc"}}}
    save_checkpoint(tmp_path / "best.pt", ckpt)
    inspect = ClassificationTask.inspect

    def inspect_with_provenance(self, recipe, data_root):
        info = inspect(self, recipe, data_root)
        info.provenance = {"splits": {"val": {"path": "/data/val", "files": 18, "sha256": "bb" * 32}, "train": {"files": 36, "sha256": "cc"}}}
        return info

    monkeypatch.setattr(ClassificationTask, "inspect", inspect_with_provenance)
    warnings: list[str] = []
    monkeypatch.setattr(log, "warning", warnings.append)
    metrics = api.evaluate(tmp_path / "best.pt")
    assert 0.0 <= metrics["accuracy"] <= 1.0
    changed = [w for w in warnings if "data split" in w]
    assert len(changed) == 1
    assert "'val'" in changed[0] and "files 17 -> 18" in changed[0] and f"sha256 {'aa' * 32} -> {'bb' * 32}" in changed[0]
