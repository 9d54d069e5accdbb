"""The segmentation-models-pytorch plugin: contract kit, groups by stride, freezing per stage,
ids, options, weights (offline, files, a visiontl classifier's backbone), cards."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import visiontl_smp as plugin
from conftest import tiny_recipe
from visiontl.config.schema import StrategySection
from visiontl.contracts import BuildRequest, BuiltModel
from visiontl.errors import ConfigError, PluginError, UnknownModelError, WeightsError
from visiontl.freeze.apply import apply_phase, is_batchnorm
from visiontl.freeze.audit import FreezeAudit
from visiontl.freeze.plan import build_plan
from visiontl.ids import parse_model_id
from visiontl.tasks.segmentation import SegmentationTask
from visiontl.testing import check_groups_ordered, check_model_contract

TASK = SegmentationTask()
SMALL_UNET = {"decoder_channels": [32, 16, 16, 8, 8]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(name: str, num_classes: int = 3, **kwargs: object) -> BuiltModel:
    built = plugin.visiontl_build(BuildRequest(parse_model_id(f"smp:{name}"), "segmentation", num_classes, **kwargs))
    assert built is not None
    return built


# --------------------------------------------------------------------------- contract kit


@pytest.mark.parametrize(
    ("name", "options", "stages"),
    [
        ("unet-resnet18", SMALL_UNET, ["stem", "stage1", "stage2", "stage3", "stage4"]),
        ("unet-tu-resnet10t", SMALL_UNET, ["stem", "stage1", "stage2", "stage3", "stage4"]),  # timm universal encoder
        ("fpn-mobilenet_v2", {"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32}, ["stem", "stage1", "stage2", "stage3", "stage4"]),
        ("deeplabv3plus-resnet18", {"decoder_channels": 32}, ["stem", "stage1", "stage2", "stage3", "stage4"]),
        ("segformer-mit_b0", {"decoder_segmentation_channels": 32}, ["stage1", "stage2", "stage3", "stage4"]),  # no stride-2 stage
        ("pspnet-resnet18", {"psp_out_channels": 32}, ["stem", "stage1", "stage2"]),  # encoder_depth 3
    ],
)
def test_contract_kit(name, options, stages):
    report = check_model_contract(plugin, f"smp:{name}", task="segmentation", num_classes=3, input_size=(64, 64), options=options)
    assert report.groups == [*stages, "decoder", "head"]
    assert report.frozen_checked > 0 and report.benchmark is not None


def test_stages_follow_the_features_output_stride():
    built = build("unet-resnet18", options=SMALL_UNET)
    groups = {g.name: g for g in plugin.visiontl_freeze(built)}
    assert set(groups["stem"].params) == {"encoder.conv1.weight", "encoder.bn1.weight", "encoder.bn1.bias"}
    for i in range(1, 5):
        assert {p.split(".")[1] for p in groups[f"stage{i}"].params} == {f"layer{i}"}
    assert all(p.startswith("decoder.") for p in groups["decoder"].params)
    assert {g.role for g in groups.values()} == {"stem", "stage", "head"} and groups["decoder"].role == "head"
    # A dilated encoder (DeepLabV3, output stride 8) keeps its five nominal stages.
    dilated = build("deeplabv3-resnet18", options={"decoder_channels": 16})
    names = [g.name for g in plugin.visiontl_freeze(dilated)]
    assert names == ["stem", "stage1", "stage2", "stage3", "stage4", "decoder", "head"]
    # Encoder layers past encoder_depth join the last stage instead of forming a frozen island.
    psp = build("pspnet-resnet18", options={"psp_out_channels": 16})
    last = next(g for g in plugin.visiontl_freeze(psp) if g.name == "stage2")
    assert any(".layer4." in p for p in last.params) and any(".layer2." in p for p in last.params)


def test_progressive_phase_freezes_per_stage_with_batchnorm_statistics_bit_identical():
    built = build("unet-resnet18", options=SMALL_UNET)
    model = built.model
    groups = plugin.visiontl_freeze(built)
    check_groups_ordered(model, groups)
    plan = build_plan(groups, StrategySection(name="progressive", unfreeze_last=1, phase_epochs=[1, 1, 1]), 0.05, 3)
    phase = plan.phases[1]  # last1: stage4 + decoder + head train; stem..stage3 frozen
    assert set(phase.trainable) == {"stage4", "decoder", "head"}
    applied = apply_phase(model, groups, phase)
    audit = FreezeAudit.snapshot(model, applied.frozen_params, applied.stat_buffers, phase.name)
    assert any(b.startswith("encoder.layer3.") and b.endswith("running_mean") for b in applied.stat_buffers)
    stage4_before = model.encoder.layer4[0].bn1.running_mean.clone()
    batch = TASK.example_batch(3, (64, 64), 2)
    loss_fn = TASK.loss_function(_recipe(), _info(3))
    optimizer = torch.optim.SGD([{"params": g["params"]} for g in applied.param_groups], lr=0.05)
    for _ in range(2):
        model.train()  # must not put the frozen stages' BatchNorm back in training mode
        for name, module in model.named_modules():
            if is_batchnorm(module) and name.startswith(("encoder.layer3", "encoder.bn1")):
                assert not module.training, name
        loss, _ = TASK.forward_train(model, batch, loss_fn)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    report = audit.verify(model)
    assert report.ok and report.buffers_checked > 0
    assert not torch.equal(stage4_before, model.encoder.layer4[0].bn1.running_mean)  # the trained stage did move


def _recipe():
    from visiontl.config.schema import DataSection, ModelSection, Recipe

    return Recipe(task="segmentation", data=DataSection(root="x", format="masks"), model=ModelSection(id="smp:unet-resnet18"))


def _info(n):
    from visiontl.tasks.base import DataInfo

    return DataInfo([f"c{i}" for i in range(n)])


# --------------------------------------------------------------------------- ids and options


def test_ids_aliases_and_did_you_mean():
    assert build("unet++-resnet18", options={"decoder_channels": [16, 8, 8, 8, 8]}).extras["architecture"] == "unetplusplus"
    with pytest.raises(UnknownModelError, match="Did you mean 'smp:unet-resnet34'"):
        build("unte-resnet34")
    with pytest.raises(UnknownModelError, match="smp:unet-resnet34"):
        build("unet-resnet43")
    with pytest.raises(UnknownModelError, match="tu-efficientnet_b0"):
        build("unet-tu-efficientnet_bo")
    with pytest.raises(UnknownModelError, match="visiontl models --family smp"):
        build("unet")


def test_options_smp_would_ignore_or_visiontl_sets_are_refused():
    with pytest.raises(ConfigError, match="decoder_chanels.*Did you mean 'decoder_channels'"):
        build("unet-resnet18", options={"decoder_chanels": [8, 8, 8, 8, 8]})
    with pytest.raises(ConfigError, match="classes cannot be set"):
        build("unet-resnet18", options={"classes": 4})
    with pytest.raises(ConfigError, match="SMP cannot build"):
        build("unet-resnet18", options={"decoder_channels": [8, 8]})
    with pytest.raises(PluginError, match="semantic segmentation"):
        plugin.visiontl_build(BuildRequest(parse_model_id("smp:unet-resnet18"), "classification", 3))


# --------------------------------------------------------------------------- weights


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty Hugging Face cache."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("VISIONTL_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))


@pytest.mark.parametrize("name", ["unet-resnet18", "unet-tu-resnet10t"])
def test_pretrained_offline_fails_fast_with_model_source_and_fix(offline, name):
    started = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        build(name, pretrained=True, options=SMALL_UNET)
    assert time.perf_counter() - started < 10
    text = str(err.value)
    assert f"smp:{name}" in text and "huggingface.co" in text and "model.weights" in text


def test_unknown_published_encoder_weights_are_a_config_error(offline):
    with pytest.raises(ConfigError, match="Valid: imagenet"):
        build("unet-resnet34", pretrained=True, options={"encoder_weights": "instagram"})


def test_whole_model_and_encoder_only_state_dicts_load(tmp_path):
    source = build("unet-resnet18", options=SMALL_UNET).model
    torch.save(source.state_dict(), tmp_path / "whole.pt")
    torch.save(source.encoder.state_dict(), tmp_path / "encoder.pt")
    whole = build("unet-resnet18", options=SMALL_UNET, weights=tmp_path / "whole.pt")
    assert whole.weights.loaded == len(source.state_dict()) and not whole.weights.missing
    enc = build("unet-resnet18", options=SMALL_UNET, weights=tmp_path / "encoder.pt")
    assert enc.weights.loaded == len(source.encoder.state_dict())
    assert all(k.startswith(("decoder.", "segmentation_head.")) for k in enc.weights.missing)
    assert torch.equal(enc.model.encoder.layer3[0].conv1.weight, source.encoder.layer3[0].conv1.weight)


@pytest.fixture(scope="module")
def timm_classifier_run(tmp_path_factory, shapes_root):
    """A tiny timm:resnet10t classifier fine-tuned for one epoch: its best.pt."""
    from visiontl import api
    from visiontl.config.loader import validate_recipe

    out = tmp_path_factory.mktemp("cls")
    recipe = validate_recipe(tiny_recipe(shapes_root, out, strategy={"name": "full"}, train={"epochs": 1, "batch_size": 16, "progress": False, "seed": 0}, data={"limit": 8}))
    return api.run(recipe).run_dir / "checkpoints" / "best.pt"


def test_backbone_of_a_visiontl_classification_checkpoint(timm_classifier_run):
    ckpt = torch.load(timm_classifier_run, weights_only=True)
    built = build("unet-tu-resnet10t", options=SMALL_UNET, weights=timm_classifier_run)
    encoder_tensors = [k for k in built.model.encoder.state_dict()]
    assert built.weights.loaded == len(encoder_tensors)
    assert built.weights.source.startswith("checkpoint-backbone:") and "timm:resnet10t classification run" in built.weights.source
    assert "fc.weight" in built.weights.unexpected  # the classifier's head is left out
    assert not any(k.startswith("encoder.") for k in built.weights.missing)
    assert torch.equal(built.model.encoder.model.layer4[0].conv2.weight, ckpt["model"]["layer4.0.conv2.weight"])
    assert torch.equal(built.model.encoder.model.bn1.running_var, ckpt["model"]["bn1.running_var"])
    with pytest.raises(WeightsError, match="architecture 'resnet10t' is not the encoder 'resnet18'.*smp:unet-tu-resnet10t"):
        build("unet-resnet18", options=SMALL_UNET, weights=timm_classifier_run)


# --------------------------------------------------------------------------- surface


def test_importing_the_plugin_does_not_import_torch_or_smp():
    code = "import sys, visiontl_smp; print('torch' in sys.modules, 'segmentation_models_pytorch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_plugin_info_names_and_cards():
    from visiontl.plugin_manager import build_plugin_manager

    info = plugin.visiontl_plugin_info()
    assert (info.families, info.tasks) == (("smp",), ("segmentation",))
    status = {s.name: s for s in build_plugin_manager().statuses}["smp"]
    assert status.status == "ok", status.error
    names = plugin.visiontl_model_names("smp", "segmentation")
    assert "unet-resnet34" in names and "segformer-mit_b0" in names and "upernet-resnet50" in names
    assert plugin.visiontl_model_names("smp", "classification") == [] and plugin.visiontl_model_names("timm", None) is None
    cards = {c.id: c for c in plugin.visiontl_select("segmentation")}
    unet = cards["smp:unet-resnet34"]
    assert unet.tasks == ("segmentation",) and 24 < unet.params_m < 25
    assert unet.extras["encoder_params_m_published"] == 21 and "encoders.rst" in unet.extras["encoder_params_source"]
    assert unet.extras["params_source"].startswith("measured: built on the meta device")
    assert cards["smp:segformer-mit_b0"].params_m is not None
    assert plugin.visiontl_select("classification") is None


def test_an_smp_model_trains_in_the_shared_loop(tmp_path):
    """Two tiny epochs end to end: a dataset with a learnable rule reaches a sensible mIoU."""
    import numpy as np
    from PIL import Image

    from visiontl import api
    from visiontl.config.loader import validate_recipe

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(24 if split == "train" else 6):
            labels = np.zeros((64, 64), dtype=np.uint8)
            y, x = rng.integers(0, 32, 2)
            labels[y:y + 32, x:x + 32] = 1
            image = np.where(labels[..., None] == 1, [220, 40, 40], [30, 30, 200]).astype(np.uint8)
            for d in ("images", "masks"):
                (tmp_path / split / d).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / split / "images" / f"{i}.png")
            Image.fromarray(labels).save(tmp_path / split / "masks" / f"{i}.png")
    recipe = validate_recipe({
        "task": "segmentation",
        "data": {"format": "masks", "root": str(tmp_path), "images": "train/images", "masks": "train/masks",
                 "val_images": "val/images", "val_masks": "val/masks", "class_names": ["bg", "square"], "image_size": 64},
        "model": {"id": "smp:unet-resnet18", "options": SMALL_UNET},
        "strategy": {"name": "full"}, "optimizer": {"lr": 0.01}, "augmentation": {"preset": "none"},
        "train": {"epochs": 4, "batch_size": 4, "progress": False}, "output": {"dir": str(tmp_path / "runs"), "plots": False},
    })
    outcome = api.run(recipe)
    assert outcome.summary["primary_metric"] == "miou" and outcome.summary["best"]["miou"] > 0.6, outcome.summary["best"]
    assert [a["ok"] for a in outcome.summary["audits"]] == [True]
    metrics = api.evaluate(outcome.run_dir)
    assert metrics["miou"] == pytest.approx(outcome.summary["final"]["miou"], abs=1e-6)
    assert Path(outcome.run_dir / "report.md").read_text().count("| square |") == 1
