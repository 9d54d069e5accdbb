"""The Ultralytics plugin: contract kit, named groups, weights, the plan driving Ultralytics'
trainer (frozen stays frozen, BatchNorm statistics do not drift, per-group learning rates),
offline safety (measured), the recipe through the CLI, and COCO JSON data.

Every training here is YOLOv8n from its config at 64 px on 4-8 real images, one epoch per
phase: the file runs in about two minutes on two shared cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import visiontl_ultralytics as plugin
from conftest import ROOT
from visiontl.config.loader import validate_recipe
from visiontl.contracts import BuildRequest, BuiltModel, TrainJob
from visiontl.errors import ConfigError, PluginError, UnknownModelError, WeightsError
from visiontl.ids import parse_model_id
from visiontl.testing import check_model_contract
from visiontl_ultralytics.groups import group_layers
from visiontl_ultralytics.offline import prepare_environment

# What the plugin does before it first imports Ultralytics; the tests below import it directly.
prepare_environment()

BACKBONE = ("stem", "stage1", "stage2", "stage3", "stage4", "sppf")


def build(name: str = "yolov8n", task: str = "detection", num_classes: int = 3, **kwargs: Any) -> BuiltModel:
    built = plugin.visiontl_build(BuildRequest(parse_model_id(f"ultralytics:{name}"), task, num_classes, **kwargs))
    assert built is not None
    return built


def coco128_recipe(shared: Path, out: Path, **sections: Any) -> dict[str, Any]:
    """YOLOv8n from scratch on 4 coco128 images per split at 64 px, one head-only epoch."""
    recipe: dict[str, Any] = {
        "task": "detection",
        "data": {"format": "yolo", "root": str(shared / "coco128"), "yaml": "data.yaml", "limit": 4, "image_size": 64},
        "model": {"id": "ultralytics:yolov8n"},
        "strategy": {"name": "feature_extraction"},
        "optimizer": {"lr": 0.01},
        "scheduler": {"name": "none"},
        "augmentation": {"preset": "none"},
        "train": {"epochs": 1, "batch_size": 4, "progress": False, "seed": 0},
        "output": {"dir": str(out), "name": "t", "plots": False},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return recipe


def train_job(recipe: dict[str, Any]) -> TrainJob:
    """The job ``visiontl run`` would hand the plugin (built, grouped, planned)."""
    from visiontl.api import prepare
    from visiontl.runs.layout import RunDir

    prepared = prepare(validate_recipe(recipe, "test"))
    run = RunDir.create(Path(recipe["output"]["dir"]), recipe["task"], "job")
    return TrainJob(prepared.recipe, prepared.built, prepared.groups, prepared.plan, prepared.task, prepared.info, run, prepared.data_root)


def group_tensors(model: torch.nn.Module, groups: tuple[str, ...], layers: dict[str, list[int]], kind: str) -> dict[str, torch.Tensor]:
    """Parameters or BatchNorm statistics of the named groups (cloned)."""
    prefixes = tuple(f"net.model.{i}." for g in groups for i in layers[g])
    items = model.named_parameters() if kind == "params" else model.named_buffers()
    return {n: t.detach().clone() for n, t in items if n.startswith(prefixes) and (kind == "params" or "running_" in n)}


# --------------------------------------------------------------------------- surface


def test_plugin_import_needs_neither_torch_nor_ultralytics():
    code = "import sys, visiontl_ultralytics as p\np.visiontl_plugin_info(); p.visiontl_model_names('ultralytics', None)\nprint('torch' in sys.modules, 'ultralytics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_info_names_and_cards():
    info = plugin.visiontl_plugin_info()
    assert info.families == ("ultralytics",) and set(info.tasks) == {"detection", "instance_segmentation"}
    assert info.requires == ("ultralytics>=8.1",) and "visiontl[ultralytics]" in info.install_hint
    det = plugin.visiontl_model_names("ultralytics", "detection")
    seg = plugin.visiontl_model_names("ultralytics", "instance_segmentation")
    assert {f"yolov8{s}" for s in "nsmlx"} <= set(det) and {f"yolov8{s}-seg" for s in "nsmlx"} <= set(seg)
    assert not set(det) & set(seg)
    assert plugin.visiontl_model_names("timm", None) is None
    cards = {c.id: c for c in plugin.visiontl_select("detection")}
    n = cards["ultralytics:yolov8n"]
    # computed here from the config (MACs, not Ultralytics' 2x-MAC "FLOPs") ...
    assert n.params_m == pytest.approx(3.157, abs=0.01) and n.gmacs == pytest.approx(4.37, abs=0.05)
    # ... and published COCO figures with their source
    box = n.metric("box_map")
    assert box is not None and box.value == pytest.approx(37.3) and "yolov8.md" in box.source
    assert all(c.id.endswith("-seg") for c in plugin.visiontl_select("instance_segmentation"))
    assert plugin.visiontl_select("classification") is None


def test_catalogue_matches_its_sources():
    """Cards agree with published.csv and with the models built here (MACs = FLOPs / 2)."""
    from visiontl_ultralytics.build import make_network
    from visiontl_ultralytics.catalogue import cards, published_rows
    from visiontl_ultralytics.names import SPECS

    rows = published_rows()
    for card in cards():
        name = card.name
        published = {r["metric_name"]: float(r["metric_value"]) for r in rows[name] if r["dataset"] == "COCO val2017"}
        assert card.metric("box_map").value == published.get("mAP50-95", published.get("box_mAP50-95"))
        gflops = float(next(r["gflops"] for r in rows[name] if r["gflops"]))
        assert card.gmacs == pytest.approx(gflops / 2, rel=0.06), name  # Ultralytics rounds and counts a little differently
        assert card.profile is not None and card.profile.macs == pytest.approx(card.gmacs * 1e9, rel=1e-3)
    net = make_network(SPECS["yolov8n-seg"], 80)
    params = sum(p.numel() for p in net.parameters()) + 16  # + the DFL projection, a buffer here
    assert {c.id: c.params_m for c in cards()}["ultralytics:yolov8n-seg"] == round(params / 1e6, 3)


def test_unknown_and_mismatched_models_are_clear_errors():
    with pytest.raises(UnknownModelError, match="Did you mean 'ultralytics:yolov8n'"):
        build("yolov8nn")
    with pytest.raises(ConfigError, match="'ultralytics:yolov8n-seg' is a instance segmentation model.*ultralytics:yolov8n'"):
        build("yolov8n-seg", task="detection")
    with pytest.raises(PluginError, match="not 'classification'"):
        build("yolov8n", task="classification")
    with pytest.raises(ConfigError, match="Unknown model.options key 'imgsize'.*'imgsz'"):
        build("yolov8n", options={"imgsize": 64})


# --------------------------------------------------------------------------- contract, groups


@pytest.mark.parametrize("name,task", [("yolov8n", "detection"), ("yolov8n-seg", "instance_segmentation")])
def test_contract_kit(name, task):
    report = check_model_contract(plugin, f"ultralytics:{name}", task=task, input_size=(64, 64), options={"imgsz": 64})
    assert report.groups == [*BACKBONE, "neck", "head"]
    assert report.frozen_checked > 100 and report.buffers_checked > 100


def test_groups_follow_the_config_not_user_indices():
    built = build("yolov8n")
    assert group_layers(built.model) == {
        "stem": [0], "stage1": [1, 2], "stage2": [3, 4], "stage3": [5, 6], "stage4": [7, 8], "sppf": [9],
        "neck": list(range(10, 22)), "head": [22],
    }
    groups = plugin.visiontl_freeze(built)
    assert [g.role for g in groups] == ["stem", "stage", "stage", "stage", "stage", "stage", "neck", "head"]
    # the DFL projection is a buffer: it can never train, so it is in no group
    assert "net.model.22.dfl.conv.weight" in dict(built.model.named_buffers())
    # YOLO11 has an attention block after SPPF; P6 models a fifth stage
    from ultralytics.nn.tasks import yaml_model_load

    from visiontl_ultralytics.groups import layer_plan

    assert [g for g, _, _ in layer_plan(yaml_model_load("yolo11n.yaml"))] == [*BACKBONE, "psa", "neck", "head"]
    assert [g for g, _, _ in layer_plan(yaml_model_load("yolov8n-p6.yaml"))][4:7] == ["stage4", "stage5", "sppf"]


def test_eval_outputs_are_in_input_pixels():
    """A box drawn on a letterboxed canvas comes back in the original image's pixels."""
    from visiontl_ultralytics.model import letterbox_batch

    image = torch.zeros(3, 100, 200)
    canvas, frames = letterbox_batch([image], 64)
    assert canvas.shape == (1, 3, 64, 64) and (frames[0].new_h, frames[0].new_w) == (32, 64)
    box = torch.tensor([[8.0, 16.0 + 4.0, 40.0, 16.0 + 20.0]])  # canvas pixels (top pad 16)
    assert torch.allclose(frames[0].unletterbox_boxes(box), torch.tensor([[25.0, 12.5, 125.0, 62.5]]))


# --------------------------------------------------------------------------- weights


def test_ultralytics_checkpoint_loads_with_new_head_reported(tmp_path):
    from visiontl_ultralytics.build import make_network
    from visiontl_ultralytics.names import SPECS

    coco = make_network(SPECS["yolov8n"], 80)
    torch.save({"model": coco, "epoch": -1}, tmp_path / "coco.pt")  # Ultralytics' checkpoint layout
    built = build("yolov8n", num_classes=2, weights=tmp_path / "coco.pt")
    report = built.weights
    assert report.source == f"file:{tmp_path / 'coco.pt'}"
    # the class outputs (80 -> 2) and the class branch, narrower for 2 classes, are new
    assert report.reinitialised and all(".cv3." in k for k in report.reinitialised)
    assert "net.model.22.cv3.0.2.weight" in report.reinitialised
    # everything else came from the file, bit for bit
    assert torch.equal(built.model.net.model[0].conv.weight, coco.model[0].conv.weight)
    assert torch.equal(built.model.net.model[22].cv2[0][0].conv.weight, coco.model[22].cv2[0][0].conv.weight)
    # the new head is reported once, as re-initialised, not also as missing
    assert not set(report.missing) & set(report.reinitialised) and report.loaded > 300


def test_pretrained_offline_fails_fast_naming_the_file(tmp_path, monkeypatch):
    from visiontl_ultralytics import build as build_module

    # an empty weights folder (Ultralytics' settings file is left alone) and working directory
    monkeypatch.setattr(build_module, "weights_dir", lambda: tmp_path / "weights")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VISIONTL_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        build("yolov8n", pretrained=True)
    assert time.perf_counter() - started < 5  # before any model is built
    message = str(err.value)
    assert "yolov8n.pt" in message and "releases/download" in message and str(tmp_path / "weights") in message
    with pytest.raises(WeightsError, match="publishes no pretrained weights for 'ultralytics:yolov8n-p2'"):
        build("yolov8n-p2", pretrained=True)


# --------------------------------------------------------------------------- the plan drives Ultralytics


def test_bn_drift_pinned_without_the_lock_and_gone_with_it(shared_data, tmp_path):
    """Ultralytics' trainer re-enables gradients it did not disable (ultralytics#4205) and puts
    frozen BatchNorm back in training mode (ultralytics#9391): pinned on a plain run, then the
    same freezing through the visiontl plan keeps weights and statistics bit-identical."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from visiontl.data.detection.export import write_yolo_dataset
    from visiontl_ultralytics.ultra_trainer import dataset_dict

    job = train_job(coco128_recipe(shared_data, tmp_path))
    model, layers = job.built.model, group_layers(job.built.model)
    before_params = group_tensors(model, BACKBONE, layers, "params")
    before_stats = group_tensors(model, BACKBONE, layers, "stats")
    backbone = {n for n in before_params}

    # 1. plain Ultralytics, frozen the usual way (requires_grad=False)
    naive = build("yolov8n", num_classes=len(job.data_info.class_names)).model
    naive.load_state_dict(model.state_dict())
    for n, p in naive.named_parameters():
        p.requires_grad_(n not in backbone)
    data_yaml = write_yolo_dataset(job.data_info.class_names, job.data_info.extras["train_records"], job.data_info.extras["val_records"], tmp_path / "yolo", False)

    class Plain(DetectionTrainer):  # only the dataset dict, so that no font is fetched
        def get_dataset(self):
            return dataset_dict(self.args.data)

        def final_eval(self):
            return None

    regranted: list[int] = []

    def refreeze(trainer):  # the user's fix for #4205 ... which leaves #9391
        regranted.append(sum(p.requires_grad for n, p in naive.named_parameters() if n in backbone))
        for n, p in naive.named_parameters():
            p.requires_grad_(n not in backbone)

    trainer = Plain(overrides={"model": "yolov8n.yaml", "data": str(data_yaml), "epochs": 1, "imgsz": 64, "batch": 4, "nbs": 4,
                               "device": "cpu", "workers": 0, "project": str(tmp_path), "name": "plain", "plots": False,
                               "val": False, "save": False, "amp": False, "mosaic": 0.0, "verbose": False})
    trainer.model = naive.net
    trainer.add_callback("on_pretrain_routine_end", refreeze)
    trainer.train()
    assert regranted == [len(backbone)], "Ultralytics no longer re-enables requires_grad: revisit the plugin"
    after_naive = {n: t for n, t in naive.named_buffers() if n in before_stats}
    drifted = [n for n, t in after_naive.items() if not torch.equal(t, before_stats[n])]
    assert len(drifted) > len(before_stats) // 2, "frozen BatchNorm statistics no longer drift in Ultralytics: revisit the plugin"
    assert all(torch.equal(p, before_params[n]) for n, p in naive.named_parameters() if n in backbone)

    # 2. the same freezing through the visiontl plan
    head_before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("net.model.22.")}
    result = plugin.visiontl_train(job)
    audit = result.extras["audits"][0]
    frozen = [n for n, _ in model.named_parameters() if not n.startswith("net.model.22.")]  # all but the head
    assert audit["ok"] and audit["params_checked"] == len(frozen)
    assert audit["ultralytics_regranted_requires_grad"] == len(frozen)  # neutralised, not absent
    assert audit["buffers_checked"] >= len(before_stats)
    assert all(torch.equal(t, before_stats[n]) for n, t in model.named_buffers() if n in before_stats)
    assert all(torch.equal(p, before_params[n]) for n, p in model.named_parameters() if n in backbone)
    assert any(not torch.equal(p, head_before[n]) for n, p in model.named_parameters() if n in head_before)


def test_per_group_learning_rates_reach_ultralytics_optimizer(shared_data, tmp_path, monkeypatch):
    lrs = {"head": 0.01, "neck": 0.002, "default": 0.0005}
    recipe = coco128_recipe(
        shared_data, tmp_path,
        strategy={"name": "custom", "phases": [{"name": "upper", "train": ["sppf", "neck", "head"], "epochs": 1}]},
        optimizer={"lr": lrs, "name": "sgd", "momentum": 0.9, "weight_decay": 0.001},
        model={"options": {"keep_ultralytics_weights": True}},
    )
    job = train_job(recipe)
    seen: list[Any] = []
    from visiontl_ultralytics import trainer as driver_module

    original = driver_module.UltralyticsDriver._make_trainer

    def spy(self, args, hooks):  # keep the trainer Ultralytics runs, to read its optimizer
        made = original(self, args, hooks)
        seen.append(made)
        return made

    monkeypatch.setattr(driver_module.UltralyticsDriver, "_make_trainer", spy)
    result = plugin.visiontl_train(job)
    optimizer = seen[0].optimizer
    assert isinstance(optimizer, torch.optim.SGD)
    by_group: dict[str, set[float]] = {}
    for g in optimizer.param_groups:
        by_group.setdefault(g["group"], set()).add(g["initial_lr"])
    assert by_group == {"sppf": {0.0005}, "neck": {0.002}, "head": {0.01}}
    # decay only on weights, none on biases and norm parameters
    decays = {(g["group"], g["params"][0].ndim > 1): g["weight_decay"] for g in optimizer.param_groups}
    assert decays[("head", True)] == 0.001 and decays[("head", False)] == 0.0
    # every trainable parameter exactly once, no frozen one
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    trainable = {id(p) for n, p in job.built.model.named_parameters() if n.startswith(tuple(f"net.model.{i}." for i in range(9, 23)))}
    assert in_optimizer == trainable
    row = result.history[0]
    assert (row["lr_head"], row["lr_neck"], row["lr_sppf"]) == (0.01, 0.002, 0.0005) and "lr_stage4" not in row
    # Ultralytics' own checkpoint, kept on request, pickles the (locked) model and holds the
    # weights visiontl carried on (its EMA, stored in half precision); it is read through the
    # allow-list, never Ultralytics' full unpickle
    import ultralytics.nn.tasks as ultralytics_tasks

    from visiontl_ultralytics.build import read_weights

    monkeypatch.setattr(ultralytics_tasks, "torch_safe_load", lambda *a, **k: pytest.fail("full unpickle used"))
    saved = read_weights(job.run.path / "ultralytics" / "phase1_upper" / "weights" / "last.pt")
    own = job.built.model.net.state_dict()
    assert set(saved) == set(own)
    assert torch.allclose(saved["model.22.cv2.0.2.weight"], own["model.22.cv2.0.2.weight"], atol=1e-3)


def test_offline_run_makes_no_network_attempt(shared_data):
    """A fresh interpreter (so Ultralytics' import-time checks count too) behind a guard that
    blackholes every connection: import, build, three phases of training and evaluation."""
    script = ROOT / "benchmarks" / "ultralytics_offline.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--data", str(shared_data), "--mode", "blackhole", "--images", "4", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["attempts"] == [], result["attempts"]
    assert result["epochs"] == 3 and result["audits_ok"]
    # A blackholed connect waits 20 s: nothing waited, so the run is far below that per attempt.
    assert result["wall_s"] < 120, result


# --------------------------------------------------------------------------- recipe, CLI, data


def test_detect_realtime_recipe_smoke_through_the_cli(shared_data, tmp_path):
    from click.testing import CliRunner

    from visiontl.cli import cli

    recipe = yaml.safe_load((ROOT / "recipes" / "detect_realtime.yaml").read_text())
    assert recipe["model"]["id"] == "ultralytics:yolov8n" and recipe["data"]["root"] == "pennfudan"
    overrides = ["model.pretrained=false", "data.image_size=64", "data.limit=6", "data.val_last=3",
                 "strategy.phase_epochs=[1,1,1]", "train.batch_size=3", "train.progress=false",
                 f"output.dir={tmp_path}", "output.plots=true"]
    args = ["run", str(ROOT / "recipes" / "detect_realtime.yaml"), "--data-root", str(shared_data)]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = tmp_path / "detection" / "detect_realtime"
    summary = json.loads((run / "summary.json").read_text())
    assert [p["name"] for p in summary["phases"]] == ["head", "last2", "all"] and summary["epochs_run"] == 3
    assert all(a["ok"] for a in summary["audits"]) and summary["audits"][0]["params_checked"] > 0
    assert summary["ultralytics"]["imgsz"] == 64 and summary["data"]["classes"] == ["person"]
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("epoch,phase,phase_epoch,train_loss,train_box_loss")
    assert {"map", "map50", "lr_head"} <= set(rows[0].split(","))
    for name in ("checkpoints/best.pt", "checkpoints/last.pt", "report.md", "curves.png",
                 "ultralytics/phase1_head/results.csv", "ultralytics/phase1_head/labels.jpg", "ultralytics/phase3_all/results.png"):
        assert (run / name).is_file(), name
    # the run's checkpoint predicts and evaluates like any other detector's
    from visiontl.api import evaluate, predict

    predictions = predict(run, [shared_data / "pennfudan" / "images" / "FudanPed00001.png"], score_threshold=0.0, out_dir=tmp_path / "png")
    assert predictions[0].error is None and Path(predictions[0].overlay).is_file()
    metrics = evaluate(run, data_root=shared_data)
    assert metrics["num_images"] == 3 and 0.0 <= metrics["map"] <= 1.0


def test_yolo_copy_of_coco_json_carries_the_same_boxes(shared_data, tmp_path):
    """What Ultralytics reads from the YOLO copy of PennFudan is the COCO JSON's boxes."""
    from ultralytics.data.dataset import YOLODataset

    from visiontl.api import prepare
    from visiontl.data.detection.export import write_yolo_dataset
    from visiontl_ultralytics.ultra_trainer import dataset_dict

    recipe = {"task": "detection", "data": {"format": "coco", "root": str(shared_data / "pennfudan"), "train": "annotations.json",
              "images": "images", "val": None, "val_last": 5, "limit": 12}, "model": {"id": "ultralytics:yolov8n"}}
    info = prepare(validate_recipe(recipe, "test")).info
    records = info.extras["train_records"]
    data = dataset_dict(write_yolo_dataset(info.class_names, records, info.extras["val_records"], tmp_path / "yolo", False))
    dataset = YOLODataset(img_path=data["train"], data=data, task="detect", augment=False)
    by_name = {Path(r.path).name: r for r in records}
    assert len(dataset.labels) == len(records)
    for label in dataset.labels:
        record = by_name[Path(label["im_file"]).name]
        h, w = label["shape"]
        cx, cy, bw, bh = torch.from_numpy(label["bboxes"]).T
        xyxy = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], 1)
        assert torch.allclose(xyxy, torch.from_numpy(record.boxes), atol=0.01)
        assert label["cls"].reshape(-1).tolist() == record.labels.tolist()


def test_resume_continues_an_interrupted_phase(shared_data, tmp_path):
    from visiontl import hookimpl
    from visiontl.api import resume, run
    from visiontl.plugin_manager import build_plugin_manager

    class Interrupt:
        @hookimpl
        def visiontl_on_epoch_end(self, run, phase, epoch, metrics):
            if epoch == 1:
                raise KeyboardInterrupt

    recipe = coco128_recipe(shared_data, tmp_path, train={"epochs": 2}, scheduler={"name": "cosine"})
    plugins = build_plugin_manager([("interrupt", Interrupt())])
    with pytest.raises(KeyboardInterrupt):
        run(validate_recipe(recipe, "test"), plugins=plugins)
    run_dir = tmp_path / "detection" / "t"
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    loop = last["train_state"]["loop"]
    assert loop["next_epoch_in_phase"] == 1 and loop["elapsed_s"] > 0 and loop["started"]
    outcome = resume(run_dir)
    # the summary keeps the first start and counts both parts of the training time
    from datetime import datetime

    assert outcome.summary["started"] == datetime.fromisoformat(loop["started"]).replace(microsecond=0).isoformat()
    assert outcome.summary["timings_s"]["train_total"] > loop["elapsed_s"]
    rows = outcome.result.history
    assert [(r["epoch"], r["phase_epoch"]) for r in rows] == [(1, 1), (2, 2)]
    # the cosine schedule continued where it stopped: epoch 2 runs below the peak rate
    assert rows[1]["lr_head"] < rows[0]["lr_head"] == 0.01
    assert all(a["ok"] for a in outcome.summary["audits"])


def test_recipe_settings_ultralytics_cannot_honour_are_refused(shared_data, tmp_path):
    with pytest.raises(ConfigError, match="scheduler.name 'onecycle' is not available"):
        plugin.visiontl_train(train_job(coco128_recipe(shared_data, tmp_path, scheduler={"name": "onecycle"})))
    with pytest.raises(ConfigError, match="train.precision bf16 with an Ultralytics model needs CUDA"):
        plugin.visiontl_train(train_job(coco128_recipe(shared_data, tmp_path, train={"precision": "bf16", "device": "cpu"})))
    with pytest.raises(ConfigError, match="model.options.ultralytics.lr0 is set by visiontl"):
        plugin.visiontl_train(train_job(coco128_recipe(shared_data, tmp_path, model={"options": {"ultralytics": {"lr0": 0.1}}})))
    with pytest.raises(ConfigError, match="not an Ultralytics train argument. Did you mean 'mosaic'"):
        plugin.visiontl_train(train_job(coco128_recipe(shared_data, tmp_path, model={"options": {"ultralytics": {"mosiac": 0.5}}})))


def test_corrupt_images_stay_plain_errors_after_ultralytics_is_imported(tmp_path):
    # Ultralytics patches PIL.Image.open to pip-install pi-heif on unidentified files; the
    # plugin puts the original back so a corrupt image anywhere is reported, not "installed".
    from PIL import Image, UnidentifiedImageError

    from visiontl.data.images import probe_image
    from visiontl_ultralytics import offline

    offline.import_ultralytics()
    import ultralytics.data  # noqa: F401 - the dataset code imports the patches module too

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image" * 8)
    with pytest.raises(UnidentifiedImageError):
        Image.open(bad)
    assert probe_image(bad) == "not a recognised image format"
