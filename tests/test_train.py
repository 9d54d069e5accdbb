"""The shared loop through the real API: audits, learning rates, resume, caching, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from conftest import tiny_recipe
from visiontl import api, hookimpl
from visiontl.config.loader import validate_recipe
from visiontl.errors import ConfigError
from visiontl.plugin_manager import build_plugin_manager
from visiontl.train.checkpoint import load_checkpoint


def run(recipe: dict, plugins=None):
    return api.run(validate_recipe(recipe), plugins=plugins)


def test_feature_extraction_leaves_loaded_backbone_bit_identical(shapes_root, tmp_path):
    import timm

    torch.manual_seed(123)
    source = timm.create_model("resnet10t", num_classes=7)
    weights = tmp_path / "backbone.pth"
    torch.save(source.state_dict(), weights)
    outcome = run(tiny_recipe(shapes_root, tmp_path / "runs", model={"id": "timm:resnet10t", "weights": str(weights)}, optimizer={"lr": 0.05}))
    summary = outcome.summary
    assert summary["weights"]["source"] == f"file:{weights.resolve()}"
    assert sorted(summary["weights"]["reinitialised"]) == ["fc.bias", "fc.weight"]
    final = load_checkpoint(outcome.run_dir / "checkpoints" / "last.pt")["model"]
    for key, value in source.state_dict().items():
        if key.startswith("fc."):
            assert value.shape != final[key].shape
        else:
            assert torch.equal(value, final[key]), key  # weights and BN buffers alike
    assert summary["audits"][0]["ok"] and summary["audits"][0]["buffers_checked"] > 0


def test_learning_rates_per_group_as_planned(shapes_root, tmp_path):
    recipe = tiny_recipe(
        shapes_root,
        tmp_path,
        strategy={"name": "custom", "phases": [{"name": "top", "train": 1, "epochs": 1}, {"name": "every", "train": "all", "epochs": 1}]},
        optimizer={"lr": {"head": 0.01, "stage4": 0.001, "default": 0.0001}},
        scheduler={"name": "none"},
    )
    history = run(recipe).result.history
    assert history[0]["lr_head"] == 0.01 and history[0]["lr_stage4"] == 0.001
    assert "lr_stem" not in history[0]
    assert history[1]["lr_stem"] == 0.0001 and history[1]["lr_stage1"] == 0.0001 and history[1]["lr_head"] == 0.01


def test_scheduler_restarts_at_each_phase(shapes_root, tmp_path):
    recipe = tiny_recipe(shapes_root, tmp_path, strategy={"name": "progressive", "phase_epochs": [2, 1, 1]}, scheduler={"name": "cosine"})

    seen = []

    class Spy:
        @hookimpl
        def visiontl_on_phase_start(self, run, phase, index):
            seen.append(("start", phase.name))

        @hookimpl
        def visiontl_on_epoch_end(self, run, phase, epoch, metrics):
            seen.append((phase.name, metrics["lr_head"]))

    plugins = build_plugin_manager([("spy", Spy())])
    run(recipe, plugins)
    assert [s for s in seen if s[0] == "start"] == [("start", "head"), ("start", "last2"), ("start", "all")]
    lrs = [s for s in seen if s[0] != "start"]
    # cosine decays to ~0 by the end of each phase, then the next phase starts afresh
    assert lrs[1][1] < lrs[0][1]
    assert all(lr < 1e-3 for _, lr in (lrs[1], lrs[2], lrs[3]))


def test_seeded_runs_are_reproducible(shapes_root, tmp_path):
    recipe = tiny_recipe(shapes_root, tmp_path, strategy={"name": "full"}, augmentation={"preset": "standard"})
    a = run(recipe).result.history
    b = run(recipe).result.history
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    assert [r["accuracy"] for r in a] == [r["accuracy"] for r in b]


class Interrupt(Exception):
    pass


def test_resume_mid_phase_equals_an_uninterrupted_run(shapes_root, tmp_path):
    recipe = tiny_recipe(
        shapes_root,
        tmp_path,
        strategy={"name": "progressive", "phase_epochs": [1, 2, 1]},
        augmentation={"preset": "light", "mixup": 0.2},
        scheduler={"name": "onecycle"},
        optimizer={"name": "sgd", "lr": [0.001, 0.02]},
    )
    full = run(recipe)

    class StopAfterTwo:
        @hookimpl
        def visiontl_on_epoch_end(self, run, phase, epoch, metrics):
            if epoch == 2:  # the middle of phase 'last2'
                raise Interrupt

    recipe["output"] = {**recipe["output"], "name": "interrupted"}
    with pytest.raises(Interrupt):
        run(recipe, build_plugin_manager([("stop", StopAfterTwo())]))
    interrupted = Path(recipe["output"]["dir"]) / "classification" / "interrupted"
    state = load_checkpoint(interrupted / "checkpoints" / "last.pt")["train_state"]["loop"]
    assert (state["next_phase"], state["next_epoch_in_phase"]) == (1, 1)
    resumed = api.resume(interrupted)
    assert resumed.run_dir == interrupted
    assert [r["train_loss"] for r in resumed.result.history] == [r["train_loss"] for r in full.result.history]
    assert [r["accuracy"] for r in resumed.result.history] == [r["accuracy"] for r in full.result.history]
    a = load_checkpoint(full.run_dir / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(interrupted / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


KILL_AT_EPOCH_END = """
import os, signal, sys, yaml
from visiontl import api, hookimpl
from visiontl.config.loader import validate_recipe
from visiontl.plugin_manager import build_plugin_manager

class Kill:
    @hookimpl
    def visiontl_on_epoch_end(self, run, phase, epoch, metrics):
        if epoch == int(sys.argv[2]):  # checkpoints of this epoch may still be in flight
            os.kill(os.getpid(), signal.SIGKILL)

recipe = validate_recipe(yaml.safe_load(open(sys.argv[1])), "test")
api.run(recipe, plugins=build_plugin_manager([("kill", Kill())]))
"""


def test_kill_9_then_resume_equals_an_uninterrupted_run(shapes_root, tmp_path):
    import subprocess
    import sys

    import yaml

    recipe = tiny_recipe(shapes_root, tmp_path, strategy={"name": "progressive", "phase_epochs": [1, 2, 1]},
                         augmentation={"preset": "light"}, train={"threads": 1})
    full = run(recipe)
    recipe["output"] = {**recipe["output"], "name": "killed"}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    proc = subprocess.run([sys.executable, "-c", KILL_AT_EPOCH_END, str(tmp_path / "r.yaml"), "3"], capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    killed = Path(recipe["output"]["dir"]) / "classification" / "killed"
    assert load_checkpoint(killed / "checkpoints" / "last.pt")["train_state"]["loop"]["epochs_done"] in (2, 3)
    resumed = api.resume(killed)
    assert [r["train_loss"] for r in resumed.result.history] == [r["train_loss"] for r in full.result.history]
    a = load_checkpoint(full.run_dir / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(killed / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list((killed / "checkpoints").glob(".*.tmp"))  # a write cut short was cleaned up


def test_cached_and_uncached_features_give_the_same_result(shapes_root, tmp_path):
    recipe = tiny_recipe(shapes_root, tmp_path, train={"epochs": 3}, model={"id": "timm:resnet10t", "options": {"drop_rate": 0.3}})
    cached = run({**recipe, "train": {**recipe["train"], "cache_features": "on"}})
    plain = run({**recipe, "train": {**recipe["train"], "cache_features": "off"}})
    assert cached.summary["feature_cache"]["head"].startswith("cached")
    assert plain.summary["feature_cache"]["head"].startswith("not cached")
    assert all(r["cached"] for r in cached.result.history)
    for a, b in zip(cached.result.history, plain.result.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4, abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4, abs=1e-5)
        assert a["accuracy"] == b["accuracy"]


def test_cache_on_fails_clearly_when_augmentation_is_random(shapes_root, tmp_path):
    recipe = tiny_recipe(shapes_root, tmp_path, augmentation={"preset": "light"}, train={"cache_features": "on"})
    with pytest.raises(ConfigError, match="cannot be cached: training augmentation is random"):
        run(recipe)


def test_corrupt_and_foreign_files_are_reported_not_fatal(shapes_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(shapes_root, root)
    (root / "train" / "circle" / "notes.txt").write_text("not an image")
    (root / "train" / "square" / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    good = next((root / "train" / "triangle").glob("*.png")).read_bytes()
    (root / "train" / "triangle" / "truncated.png").write_bytes(good[: len(good) // 2])  # header fine, data cut
    outcome = run(tiny_recipe(root, tmp_path / "runs", train={"epochs": 1, "cache_features": "off"}))
    skipped = outcome.summary["data"]["skipped"]
    names = {Path(p).name: reason for p, reason in skipped.items()}
    assert set(names) == {"notes.txt", "garbage.jpg", "truncated.png"}
    assert "not an image file" in names["notes.txt"]
    assert "corrupt" in names["truncated.png"]
    assert outcome.summary["data"]["skipped_count"] == 3
    assert "truncated.png" in (outcome.run_dir / "report.md").read_text()


def test_early_stopping_ends_the_phase(shapes_root, tmp_path):
    recipe = tiny_recipe(shapes_root, tmp_path, optimizer={"lr": 1e-12}, train={"epochs": 6, "early_stopping": {"patience": 2, "min_delta": 0.5}})
    history = run(recipe).result.history
    assert len(history) == 3  # best at epoch 1, then two epochs without improvement


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine_restarts", "plateau", "none"])
def test_every_scheduler_runs_across_a_phase_boundary(shapes_root, tmp_path, scheduler):
    recipe = tiny_recipe(shapes_root, tmp_path, strategy={"name": "progressive", "phase_epochs": [1, 1, 1]}, scheduler={"name": scheduler})
    outcome = run(recipe)
    assert len(outcome.result.history) == 3


def test_bf16_autocast_with_mixup_cutmix_and_clipping(shapes_root, tmp_path):
    recipe = tiny_recipe(
        shapes_root,
        tmp_path,
        strategy={"name": "full"},
        train={"epochs": 1, "precision": "bf16"},
        augmentation={"preset": "strong", "mixup": 0.4, "cutmix": 1.0},
        optimizer={"grad_clip": 1.0},
        loss={"label_smoothing": 0.1, "class_weights": "balanced"},
    )
    outcome = run(recipe)
    assert outcome.summary["precision"] == "bf16"
    assert torch.isfinite(torch.tensor(outcome.result.history[0]["train_loss"]))


def test_fp16_needs_cuda(shapes_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: fp16 is allowed")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        run(tiny_recipe(shapes_root, tmp_path, train={"precision": "fp16"}))


def test_a_device_list_is_refused_with_the_torchrun_fix():
    from visiontl.train.precision import resolve_device

    with pytest.raises(ConfigError, match="lists several devices.*torchrun --nproc_per_node"):
        resolve_device("0,1")


def test_run_directory_layout_and_never_overwritten(shapes_root, tmp_path):
    recipe = tiny_recipe(shapes_root, tmp_path, train={"epochs": 1}, output={"plots": True})
    first = run(recipe).run_dir
    second = run(recipe).run_dir
    assert second.name == first.name + "-2"
    for name in ("recipe.yaml", "plan.json", "plan.txt", "metrics.csv", "summary.json", "report.md", "curves.png", "confusion_matrix.png", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (first / name).is_file(), name
    assert not list(first.glob("**/.*.pt.*"))  # no temporary files left behind
