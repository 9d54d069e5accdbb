"""torchvision detectors: the contract kit for every family, layer groups, freezing with
real BatchNorm, FrozenBatchNorm2d in the plan, weights (COCO cache, local files, offline),
backbones from classification models, options and cards."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import visiontl_torchvision as plugin
from visiontl.contracts import BuildRequest, BuiltModel
from visiontl.errors import ConfigError, FreezeAuditError, UnknownModelError, WeightsError
from visiontl.ids import parse_model_id
from visiontl.testing import check_groups_ordered, check_model_contract

TINY = {"min_size": 64, "max_size": 96}
# Few proposals and sampled RoIs: the R-CNN box heads dominate the cost at tiny inputs.
RCNN = {
    **TINY,
    "rpn_pre_nms_top_n_train": 64,
    "rpn_pre_nms_top_n_test": 64,
    "rpn_post_nms_top_n_train": 32,
    "rpn_post_nms_top_n_test": 32,
    "box_batch_size_per_image": 32,
    "box_detections_per_img": 20,
}
ONE_STAGE = {**TINY, "topk_candidates": 64, "detections_per_img": 20}
SQUEEZE = {"backbone": "torchvision:squeezenet1_1", "representation_size": 64, **RCNN}

# (model id, task, options, run the benchmark check too)
CONTRACT = [
    ("fasterrcnn_resnet50_fpn", "detection", RCNN, False),
    ("fasterrcnn_resnet50_fpn_v2", "detection", RCNN, False),
    ("fasterrcnn_mobilenet_v3_large_fpn", "detection", RCNN, False),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "detection", RCNN, True),
    ("retinanet_resnet50_fpn", "detection", ONE_STAGE, False),
    ("retinanet_resnet50_fpn_v2", "detection", ONE_STAGE, False),
    ("fcos_resnet50_fpn", "detection", ONE_STAGE, False),
    ("ssdlite320_mobilenet_v3_large", "detection", {"topk_candidates": 64, "detections_per_img": 20}, True),
    ("maskrcnn_resnet50_fpn", "instance_segmentation", RCNN, False),
    ("maskrcnn_resnet50_fpn_v2", "instance_segmentation", RCNN, False),
    ("fasterrcnn", "detection", SQUEEZE, True),
    ("maskrcnn", "instance_segmentation", SQUEEZE, False),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(name: str, task: str = "detection", num_classes: int = 3, **kwargs: object) -> BuiltModel:
    built = plugin.visiontl_build(BuildRequest(parse_model_id(f"torchvision:{name}"), task, num_classes, **kwargs))
    assert built is not None
    return built


@pytest.fixture
def empty_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    hub = tmp_path / "hub"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    return hub


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize(("name", "task", "options", "bench"), CONTRACT, ids=[c[0] for c in CONTRACT])
def test_contract_kit(name: str, task: str, options: dict, bench: bool) -> None:
    report = check_model_contract(plugin, f"torchvision:{name}", task=task, options=options, input_size=(64, 80), benchmark=bench)
    assert report.groups[-1] in ("box_head", "mask_head")
    assert report.frozen_checked > 0


def test_model_names_and_task_routing() -> None:
    det = plugin.visiontl_model_names("torchvision", "detection")
    seg = plugin.visiontl_model_names("torchvision", "instance_segmentation")
    assert det is not None and seg is not None
    assert {c[0] for c in CONTRACT if c[1] == "detection"} <= set(det)
    assert set(seg) == {"maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "maskrcnn"}
    everything = plugin.visiontl_model_names("torchvision", None)
    assert everything is not None and "resnet18" in everything and "fasterrcnn" in everything
    with pytest.raises(UnknownModelError, match="Did you mean 'torchvision:fasterrcnn_resnet50_fpn'"):
        build("fasterrcnn_resnet50_fnp")
    with pytest.raises(ConfigError, match="'torchvision:maskrcnn_resnet50_fpn' serves the task 'instance_segmentation', not 'detection'"):
        build("maskrcnn_resnet50_fpn", options=TINY)


# --------------------------------------------------------------------------- groups


def test_groups_per_family() -> None:
    expected = {
        "fasterrcnn_resnet50_fpn_v2": ["stem", "stage1", "stage2", "stage3", "stage4", "neck", "rpn", "box_head"],
        "retinanet_resnet50_fpn": ["stem", "stage1", "stage2", "stage3", "stage4", "neck", "cls_head", "box_head"],
        "ssdlite320_mobilenet_v3_large": ["stem", "stage1", "stage2", "stage3", "stage4", "stage5", "neck", "cls_head", "box_head"],
    }
    for name, names in expected.items():
        built = build(name, options=TINY if "ssd" not in name else {})
        groups = plugin.visiontl_freeze(built)
        assert groups is not None
        check_groups_ordered(built.model, groups)
        assert [g.name for g in groups] == names
        roles = {g.name: g.role for g in groups}
        assert roles["stem"] == "stem" and roles["neck"] == "neck" and roles["box_head"] == "head"
    seg = build("maskrcnn_resnet50_fpn", "instance_segmentation", options=TINY)
    groups = plugin.visiontl_freeze(seg)
    assert [g.name for g in groups][-3:] == ["rpn", "box_head", "mask_head"]
    assert all(g.role == "head" for g in groups[-3:])


def test_frozen_batchnorm_shows_in_the_plan(tmp_path: Path) -> None:
    from visiontl.config.schema import StrategySection
    from visiontl.freeze.apply import apply_phase, group_norm_kinds, group_param_counts
    from visiontl.freeze.plan import build_plan

    built = build("fasterrcnn_resnet50_fpn", options=TINY)
    groups = plugin.visiontl_freeze(built)
    kinds = group_norm_kinds(built.model, groups)
    assert kinds["stem"] == kinds["stage1"] == kinds["stage4"] == "frozen" and kinds["neck"] == "none"
    plan = build_plan(groups, StrategySection(name="full"), 0.01, 1, group_param_counts(built.model, groups), kinds)
    assert "frozen (FrozenBatchNorm2d)" in plan.table()
    applied = apply_phase(built.model, groups, plan.phases[0])
    # FrozenBatchNorm2d statistics are audited in every phase, even when everything trains.
    assert any(b.endswith("bn1.running_mean") for b in applied.stat_buffers)
    trainable_bn = build("fasterrcnn_resnet50_fpn", options={**TINY, "frozen_bn": False})
    assert group_norm_kinds(trainable_bn.model, plugin.visiontl_freeze(trainable_bn))["stage1"] == "batchnorm"


def _train_steps(built: BuiltModel, phase_name: str, strategy: dict, steps: int = 2) -> tuple[dict, object]:
    """Apply one phase of a plan, train a few steps, return (buffers before, applied)."""
    from visiontl.api import resolve_task
    from visiontl.config.schema import StrategySection
    from visiontl.freeze.apply import apply_phase
    from visiontl.freeze.plan import build_plan
    from visiontl.testing import _loss, plugins_for

    task = resolve_task(plugins_for(plugin), built.task)
    groups = plugin.visiontl_freeze(built)
    plan = build_plan(groups, StrategySection(**strategy), 0.02, 3)
    phase = next(p for p in plan.phases if p.name == phase_name)
    applied = apply_phase(built.model, groups, phase)
    before = {k: v.clone() for k, v in built.model.state_dict().items()}
    batch = task.example_batch(built.model.num_classes, (64, 80), 2)
    loss_fn = _loss(task, built.task, built.model.num_classes)
    optimizer = torch.optim.SGD([p for g in applied.param_groups for p in g["params"]], lr=0.02)
    for _ in range(steps):
        built.model.train()  # what every trainer does at each epoch
        loss, _ = task.forward_train(built.model, batch, loss_fn)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return before, applied


@pytest.mark.parametrize(("name", "task"), [("fasterrcnn_resnet50_fpn_v2", "detection"), ("maskrcnn_resnet50_fpn_v2", "instance_segmentation")])
def test_freeze_audit_is_bit_identical_with_real_batchnorm(name: str, task: str) -> None:
    from visiontl.freeze.audit import FreezeAudit
    from visiontl.freeze.modes import unlock_all

    torch.manual_seed(0)
    built = build(name, task, options={**RCNN, "frozen_bn": False})
    strategy = {"name": "progressive", "unfreeze_last": 2, "phase_epochs": [1, 1, 1]}
    before, applied = _train_steps(built, "last2", strategy)
    after = built.model.state_dict()
    audit = FreezeAudit.snapshot(built.model, applied.frozen_params, applied.stat_buffers, "last2")
    # Frozen weights and BatchNorm statistics (stem, stage1, stage2) did not move, bit for bit.
    frozen_stats = [b for b in applied.stat_buffers if b.endswith("running_mean")]
    assert any(".layer2." in b for b in frozen_stats) and not any(".layer4." in b for b in frozen_stats)
    for key in [*applied.frozen_params, *applied.stat_buffers]:
        assert torch.equal(before[key], after[key]), key
    # ... while the trainable stages' BatchNorm statistics did (the check could fail).
    moving = "detector.backbone.body.layer4.0.bn1.running_mean"
    assert not torch.equal(before[moving], after[moving])
    assert audit.verify(built.model).ok
    # Negative control: without the engine's eval lock the frozen statistics drift and the
    # audit says so.
    unlock_all(built.model)
    built.model.train()
    from visiontl.api import resolve_task
    from visiontl.testing import _loss, plugins_for

    adapter = resolve_task(plugins_for(plugin), task)
    with torch.no_grad():
        adapter.forward_train(built.model, adapter.example_batch(3, (64, 80), 2), _loss(adapter, task, 3))
    with pytest.raises(FreezeAuditError, match="Freeze audit failed after phase 'last2'.*running_"):
        audit.verify(built.model)


# --------------------------------------------------------------------------- backbones


@pytest.mark.parametrize(("backbone", "channels"), [
    ("torchvision:mobilenet_v2", 1280),
    ("torchvision:resnet50", 2048),
    ("resnet101", 2048),
    ("torchvision:resnext101_32x8d", 2048),
])
def test_seed_backbones_build(backbone: str, channels: int) -> None:
    built = build("fasterrcnn", options={"backbone": backbone, "representation_size": 32, **TINY})
    assert built.model.detector.backbone.out_channels == channels
    groups = plugin.visiontl_freeze(built)
    check_groups_ordered(built.model, groups)
    assert [g.name for g in groups][:2] == ["stem", "stage1"] and [g.name for g in groups][-2:] == ["rpn", "box_head"]
    assert not any("fc." in p or "classifier" in p for g in groups for p in g.params)  # the classifier is gone
    assert built.extras["backbone"] == backbone if ":" in backbone else f"torchvision:{backbone}"


def test_squeezenet_imagenet_backbone_weights_load(squeezenet_weights: Path, tmp_path: Path) -> None:
    from visiontl.weights import read_state_dict

    built = build("fasterrcnn", options=SQUEEZE, weights=squeezenet_weights)
    source = read_state_dict(squeezenet_weights)
    state = built.model.state_dict()
    assert all(torch.equal(state[f"detector.backbone.model.{k}"], v) for k, v in source.items())
    report = built.weights
    assert report.source == f"backbone torchvision:squeezenet1_1 file:{squeezenet_weights}" and report.loaded == len(source)
    assert report.missing == []  # the classifier it lacks was removed, not left random
    # Saved as a whole detector (a visiontl checkpoint's keys), the same file loads whole.
    path = tmp_path / "whole.pth"
    torch.save({"model": built.model.state_dict()}, path)
    again = build("fasterrcnn", options=SQUEEZE, weights=path)
    assert again.weights.source == f"file:{path}" and not again.weights.missing and not again.weights.reinitialised
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in built.model.state_dict().items())
    with pytest.raises(ConfigError, match="model.options.backbone_weights cannot be set .* name the backbone classifier's file in model.weights"):
        build("fasterrcnn", options={**SQUEEZE, "backbone_weights": "x.pth"})


def test_timm_classifier_as_backbone() -> None:
    built = build("fasterrcnn", options={"backbone": "timm:resnet10t", "representation_size": 32, **TINY})
    assert built.model.detector.backbone.out_channels == 512
    check_groups_ordered(built.model, plugin.visiontl_freeze(built))


# --------------------------------------------------------------------------- weights


def test_coco_weights_from_the_hub_cache_keep_backbone_and_replace_heads(monkeypatch: pytest.MonkeyPatch, empty_hub: Path) -> None:
    import torchvision

    monkeypatch.setenv("VISIONTL_OFFLINE", "1")  # proves the cache is read without the network
    weights = torchvision.models.get_model_weights("fasterrcnn_mobilenet_v3_large_320_fpn").DEFAULT
    torch.manual_seed(1)
    published = torchvision.models.get_model("fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, weights_backbone=None).state_dict()
    (empty_hub / "checkpoints").mkdir(parents=True)
    torch.save(published, empty_hub / "checkpoints" / Path(weights.url).name)
    built = build("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=2, pretrained=True)
    report = built.weights
    assert report.source == "pretrained:torchvision:FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1"
    assert sorted(report.reinitialised) == sorted(f"detector.roi_heads.box_predictor.{k}" for k in ("cls_score.weight", "cls_score.bias", "bbox_pred.weight", "bbox_pred.bias"))
    state = built.model.state_dict()
    same = [k for k, v in published.items() if not k.startswith("roi_heads.box_predictor") and not k.endswith("num_batches_tracked")]
    assert all(torch.equal(state[f"detector.{k}"], published[k]) for k in same)
    assert state["detector.roi_heads.box_predictor.cls_score.weight"].shape[0] == 3  # 2 classes + background
    # The same architecture as a fresh build: a checkpoint of one loads into the other.
    fresh = build("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=2)
    fresh.model.load_state_dict(built.model.state_dict())


def test_offline_coco_weights_fail_fast(monkeypatch: pytest.MonkeyPatch, empty_hub: Path) -> None:
    from visiontl import weights as core_weights

    monkeypatch.delenv("VISIONTL_OFFLINE", raising=False)
    monkeypatch.setattr(core_weights, "_REACHABLE", {})
    start = time.perf_counter()
    if core_weights.host_reachable("download.pytorch.org"):
        pytest.skip("download.pytorch.org is reachable from here: the offline path cannot be exercised")
    with pytest.raises(WeightsError) as info:
        build("fasterrcnn_resnet50_fpn_v2", pretrained=True, options=TINY)
    assert time.perf_counter() - start < 10
    text = str(info.value)
    assert "torchvision:fasterrcnn_resnet50_fpn_v2" in text and "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth" in text
    assert "model.weights" in text


def test_local_detector_file_with_torchvision_keys(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(2)
    coco = torchvision.models.get_model("ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None)
    path = tmp_path / "ssd.pth"
    torch.save(coco.state_dict(), path)
    built = build("ssdlite320_mobilenet_v3_large", num_classes=2, weights=path)
    report = built.weights
    assert report.source == f"file:{path}"
    assert report.reinitialised and all(k.startswith("detector.head.classification_head") for k in report.reinitialised)
    state = built.model.state_dict()
    key = "detector.head.regression_head.module_list.0.1.weight"
    assert torch.equal(state[key], coco.state_dict()[key.removeprefix("detector.")])


# --------------------------------------------------------------------------- options and cards


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="model.options.min_szie is not an option of torchvision's 'fasterrcnn_resnet50_fpn'. Did you mean 'min_size'"):
        build("fasterrcnn_resnet50_fpn", options={"min_szie": 64})
    with pytest.raises(ConfigError, match="model.options.trainable_backbone_layers cannot be set .* visiontl's strategy decides"):
        build("fasterrcnn_resnet50_fpn", options={"trainable_backbone_layers": 3})
    with pytest.raises(ConfigError, match="model.options.anchor_sizes is for detectors over a classification backbone"):
        build("fasterrcnn_resnet50_fpn", options={"anchor_sizes": [32]})
    with pytest.raises(ConfigError, match="'torchvision:fasterrcnn' needs model.options.backbone"):
        build("fasterrcnn", options=TINY)
    with pytest.raises(ConfigError, match="representation_size applies to two-layer box heads"):
        build("fasterrcnn_resnet50_fpn_v2", options={**TINY, "representation_size": 64})
    with pytest.raises(ConfigError, match="A VisionTransformer cannot serve as a detection backbone"):
        build("fasterrcnn", options={"backbone": "vit_b_32", **TINY})
    small = build("fasterrcnn_resnet50_fpn", options={**TINY, "rpn_post_nms_top_n_train": 50, "box_batch_size_per_image": 32, "representation_size": 128})
    det = small.model.detector
    assert det.rpn._post_nms_top_n["training"] == 50 and det.roi_heads.fg_bg_sampler.batch_size_per_image == 32
    assert det.roi_heads.box_head.fc7.out_features == 128 and det.transform.min_size == (64,)
    assert small.preprocessing.input_size == (64, 64)
    # data.image_size (the request's input_size) becomes the model's scale unless sizes are given.
    sized = build("fasterrcnn_mobilenet_v3_large_fpn", input_size=(256, 256))
    assert sized.model.detector.transform.min_size == (256,) and sized.model.detector.transform.max_size == 256
    assert build("fasterrcnn_mobilenet_v3_large_fpn", input_size=(256, 256), options={"min_size": 128}).model.detector.transform.min_size == (128,)
    ssd = build("ssdlite320_mobilenet_v3_large", options={"score_thresh": 0.2})
    assert ssd.model.detector.score_thresh == 0.2


def test_cards_carry_coco_figures_from_torchvision_metadata() -> None:
    det = {c.id: c for c in plugin.visiontl_select("detection")}
    assert set(det) == {f"torchvision:{n}" for n, t, _, _ in CONTRACT if t == "detection" and n != "fasterrcnn"}
    card = det["torchvision:fasterrcnn_resnet50_fpn_v2"]
    assert card.metric("box_map").value == pytest.approx(46.7) and card.metric("box_map").dataset == "COCO val2017"
    assert card.params_m == pytest.approx(43.71) and card.gmacs == pytest.approx(280.371)
    seg = {c.id: c for c in plugin.visiontl_select("instance_segmentation")}
    assert seg["torchvision:maskrcnn_resnet50_fpn"].metric("mask_map").value == pytest.approx(34.6)
