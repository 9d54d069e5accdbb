"""The torchvision plugin: contract kit, exact feature splits, groups, weights, errors, cards."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import visiontl_torchvision as plugin
from visiontl.contracts import BuildRequest, BuiltModel
from visiontl.errors import ConfigError, PluginError, UnknownModelError, WeightsError
from visiontl.ids import parse_model_id
from visiontl.testing import check_groups_ordered, check_model_contract

# Small members of each family, at 64 px: the whole file runs in seconds on two cores.
CONTRACT_MODELS = [
    "resnet18",
    "squeezenet1_1",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "convnext_tiny",
    "shufflenet_v2_x0_5",
    "regnet_y_400mf",
]
# (name, options, input size) covering every architecture with a split: ViT is built for
# 64 px, Inception needs 75 px or more, MaxVit its native 224.
SPLIT_MODELS = [(name, {}, 64) for name in CONTRACT_MODELS] + [
    ("mobilenet_v2", {}, 64),
    ("mnasnet0_5", {}, 64),
    ("densenet121", {}, 64),
    ("googlenet", {}, 64),
    ("inception_v3", {}, 96),
    ("alexnet", {}, 64),
    ("vgg11_bn", {}, 64),
    ("swin_t", {}, 64),
    ("vit_b_32", {"image_size": 64}, 64),
    ("maxvit_t", {}, 224),
]


def build(name: str, num_classes: int = 3, **kwargs: object) -> BuiltModel:
    built = plugin.visiontl_build(BuildRequest(parse_model_id(f"torchvision:{name}"), "classification", num_classes, **kwargs))
    assert built is not None
    return built


@pytest.fixture
def empty_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub dir (no cached checkpoints), restored after the test."""
    hub = tmp_path / "hub"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    return hub


# --------------------------------------------------------------------------- plugin surface


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import sys, visiontl_torchvision; print('torch' in sys.modules, 'torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_plugin_info_and_entry_point() -> None:
    from visiontl.plugin_manager import build_plugin_manager

    info = plugin.visiontl_plugin_info()
    assert (info.name, info.families) == ("torchvision", ("torchvision",))
    assert {"classification", "detection", "instance_segmentation", "segmentation"} == set(info.tasks)
    assert info.requires == ("torchvision>=0.15",) and info.install_hint == "pip install 'visiontl[torchvision]'"
    status = {s.name: s for s in build_plugin_manager().statuses}["torchvision"]
    assert status.status == "ok", status.error


def test_model_names_cover_every_classification_builder() -> None:
    import torchvision

    names = plugin.visiontl_model_names(family="torchvision", task="classification")
    assert names == sorted(torchvision.models.list_models(module=torchvision.models))
    assert {"resnet18", "squeezenet1_1", "mobilenet_v3_small", "efficientnet_v2_s", "vit_b_16", "swin_t", "maxvit_t"} <= set(names)
    every = plugin.visiontl_model_names(family="torchvision", task=None)
    assert set(names) < set(every)  # detection and segmentation builders join them
    assert "fasterrcnn_resnet50_fpn" not in names
    assert plugin.visiontl_model_names(family="torchvision", task="keypoints") == []
    assert plugin.visiontl_model_names(family="timm", task=None) is None


def test_hooks_decline_other_families_and_tasks() -> None:
    other = BuildRequest(parse_model_id("timm:resnet18"), "classification", 2)
    assert plugin.visiontl_build(other) is None
    with pytest.raises(PluginError, match="'keypoints'"):
        plugin.visiontl_build(BuildRequest(parse_model_id("torchvision:resnet18"), "keypoints", 2))
    built = build("squeezenet1_1")
    foreign = BuiltModel(built.model, parse_model_id("timm:squeezenet1_1"), "classification")
    assert plugin.visiontl_freeze(foreign) is None
    assert plugin.visiontl_select("keypoints") is None


# --------------------------------------------------------------------------- contract and splits


@pytest.mark.parametrize("name", CONTRACT_MODELS)
def test_contract_kit(name: str) -> None:
    report = check_model_contract(plugin, f"torchvision:{name}", input_size=(64, 64))
    assert report.groups[0] == "stem" and report.groups[-1] == "head"
    assert report.frozen_checked > 0


@pytest.mark.parametrize(("name", "options", "size"), SPLIT_MODELS, ids=[n for n, _, _ in SPLIT_MODELS])
def test_feature_split_is_exact(name: str, options: dict, size: int) -> None:
    built = build(name, options=options)
    assert built.split is not None
    model = built.model.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        direct = model(x)
        via = built.split.head(built.split.features(x))
    assert direct.shape == (2, 3)
    assert torch.equal(direct, via), (direct - via).abs().max()


def test_split_features_carry_no_head_parameters() -> None:
    # With the head's parameters the only trainable ones, features need no gradient:
    # the condition the core checks before caching them.
    built = build("resnet18")
    head = {p for g in plugin.visiontl_freeze(built) if g.role == "head" for p in g.params}
    for name, p in built.model.named_parameters():
        p.requires_grad_(name in head)
    assert not built.split.features(torch.randn(2, 3, 64, 64)).requires_grad


# --------------------------------------------------------------------------- layer groups


def test_resnet18_groups() -> None:
    built = build("resnet18")
    groups = plugin.visiontl_freeze(built)
    assert [g.name for g in groups] == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert [g.role for g in groups] == ["stem", "stage", "stage", "stage", "stage", "head"]
    assert groups[0].params == ("conv1.weight", "bn1.weight", "bn1.bias")
    assert groups[-1].params == ("fc.weight", "fc.bias")


def test_squeezenet1_1_groups_cut_at_the_max_pools() -> None:
    built = build("squeezenet1_1")
    groups = plugin.visiontl_freeze(built)
    assert [g.name for g in groups] == ["stem", "stage1", "stage2", "stage3", "head"]
    modules = [sorted({".".join(p.split(".")[:2]) for p in g.params}) for g in groups]
    assert modules == [
        ["features.0"],
        ["features.3", "features.4"],
        ["features.6", "features.7"],
        ["features.10", "features.11", "features.12", "features.9"],
        ["classifier.1"],
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mobilenet_v3_small", ["stem", "stage1", "stage2", "stage3", "stage4", "final_conv", "head"]),
        ("alexnet", ["stem", "stage1", "stage2", "fc", "head"]),
        ("vit_b_16", ["stem", "stage1", "stage2", "stage3", "stage4", "head"]),
        ("densenet121", ["stem", "stage1", "stage2", "stage3", "stage4", "head"]),
        ("inception_v3", ["stem", "stage1", "stage2", "stage3", "head"]),
        ("maxvit_t", ["stem", "stage1", "stage2", "stage3", "stage4", "head"]),
    ],
)
def test_groups_of_other_families_cover_the_model_in_order(name: str, expected: list[str]) -> None:
    built = build(name)
    groups = plugin.visiontl_freeze(built)
    check_groups_ordered(built.model, groups)
    assert [g.name for g in groups] == expected


def test_fallback_groups_for_an_unknown_architecture() -> None:
    from torch import nn

    from visiontl_torchvision.groups import classification_groups

    class Custom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.block = nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.out = nn.Linear(8, 1000)

    groups = classification_groups(Custom())
    assert [(g.name, g.params[0]) for g in groups] == [("stem", "conv.weight"), ("stage1", "block.0.weight"), ("head", "out.weight")]


def test_head_table_agrees_with_the_generic_rule() -> None:
    import torchvision

    from visiontl_torchvision.classification import HEAD_PATHS, _find_head, head_path

    names = ["alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "googlenet", "inception_v3", "maxvit_t",
             "mnasnet0_5", "mobilenet_v2", "mobilenet_v3_small", "regnet_y_400mf", "resnet18", "shufflenet_v2_x0_5",
             "squeezenet1_1", "swin_t", "vgg11", "vit_b_16"]
    seen = set()
    for name in names:
        # RegNet computes its widths with real tensors: it cannot be built on the meta device.
        device = "cpu" if name.startswith("regnet") else "meta"
        with torch.device(device):
            model = torchvision.models.get_model(name, **({"init_weights": True} if name in ("googlenet", "inception_v3") else {}))
        seen.add(type(model).__name__)
        assert head_path(model) == _find_head(model), name
    assert seen == set(HEAD_PATHS)


# --------------------------------------------------------------------------- weights


@pytest.mark.shared_data
def test_shared_squeezenet_features_file_loads(squeezenet_weights: Path) -> None:
    source = torch.load(squeezenet_weights, map_location="cpu", weights_only=True)
    built = build("squeezenet1_1", num_classes=2, weights=squeezenet_weights)
    report = built.weights
    assert report.source == f"file:{squeezenet_weights}"
    assert report.loaded == len(source) == 50  # 25 convolutions, weight and bias each
    assert report.unexpected == []
    assert set(report.missing) | set(report.reinitialised) == {"classifier.1.weight", "classifier.1.bias"}
    state = built.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source.items())
    assert built.model.classifier[1].out_channels == 2
    assert built.preprocessing.input_size == (224, 224) and built.preprocessing.crop_pct == pytest.approx(0.875)


def test_offline_pretrained_fails_fast_and_names_model_and_url(monkeypatch: pytest.MonkeyPatch, empty_hub: Path) -> None:
    from visiontl import weights as core_weights

    monkeypatch.delenv("VISIONTL_OFFLINE", raising=False)
    monkeypatch.setattr(core_weights, "_REACHABLE", {})  # a real probe, not a remembered answer
    start = time.perf_counter()
    if core_weights.host_reachable("download.pytorch.org"):
        pytest.skip("download.pytorch.org is reachable from here: the offline path cannot be exercised")
    with pytest.raises(WeightsError) as info:
        build("resnet18", num_classes=2, pretrained=True)
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"took {elapsed:.1f} s"
    text = str(info.value)
    assert "torchvision:resnet18" in text
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in text
    assert str(empty_hub / "checkpoints") in text and "model.weights" in text and "pretrained: false" in text


def test_offline_switch_fails_pretrained_at_once(monkeypatch: pytest.MonkeyPatch, empty_hub: Path) -> None:
    monkeypatch.setenv("VISIONTL_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="torchvision:mobilenet_v3_small"):
        build("mobilenet_v3_small", pretrained=True)
    assert time.perf_counter() - start < 2


def test_pretrained_loads_from_the_hub_cache_and_swaps_the_head(monkeypatch: pytest.MonkeyPatch, empty_hub: Path) -> None:
    import torchvision

    monkeypatch.setenv("VISIONTL_OFFLINE", "1")  # proves the cache is read without the network
    weights = torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1
    published = torchvision.models.squeezenet1_1().state_dict()
    (empty_hub / "checkpoints").mkdir(parents=True)
    torch.save(published, empty_hub / "checkpoints" / Path(weights.url).name)

    built = build("squeezenet1_1", num_classes=2, pretrained=True)
    report = built.weights
    assert report.source == "pretrained:torchvision:SqueezeNet1_1_Weights.IMAGENET1K_V1"
    assert report.reinitialised == ["classifier.1.weight", "classifier.1.bias"]
    assert report.loaded == len(published) - 2
    state = built.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in published.items() if not k.startswith("classifier"))
    assert state["classifier.1.weight"].shape[0] == 2


def test_weights_choice_sets_preprocessing() -> None:
    v2 = build("resnet50", options={"weights": "IMAGENET1K_V2"}).preprocessing
    assert v2.input_size == (224, 224) and v2.crop_pct == pytest.approx(224 / 232)
    b3 = build("efficientnet_b3", options={"weights": "DEFAULT"}).preprocessing
    assert b3.input_size == (300, 300) and b3.interpolation == "bicubic" and b3.crop_pct == pytest.approx(300 / 320)
    plain = build("resnet18").preprocessing
    assert (plain.input_size, plain.crop_pct, plain.interpolation) == ((224, 224), 0.875, "bilinear")


# --------------------------------------------------------------------------- errors


def test_unknown_model_suggests_the_nearest_name() -> None:
    with pytest.raises(UnknownModelError, match="Did you mean 'torchvision:resnet18'"):
        build("resnt18")


def test_unknown_weights_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"IMAGENET1K_V9.*Valid: IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT"):
        build("resnet50", options={"weights": "IMAGENET1K_V9"})


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("resnet18", {"bogus": 1}, r"model\.options\.bogus rejected"),
        # MobileNetV3 and ConvNeXt take **kwargs and would ignore a misspelt option silently.
        ("mobilenet_v3_small", {"dropuot": 0.1}, r"model\.options\.dropuot is not an option.*Valid:.*dropout"),
        ("convnext_tiny", {"bogus": 1}, r"model\.options\.bogus is not an option"),
        ("squeezenet1_1", {"num_classes": 5}, r"model\.options\.num_classes cannot be set"),
    ],
)
def test_bad_options_are_config_errors(name: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(name, options=options)


def test_builder_options_pass_through() -> None:
    built = build("mobilenet_v3_small", options={"dropout": 0.5, "width_mult": 0.5})
    assert built.model.classifier[2].p == 0.5
    assert built.model.features[0][0].out_channels == 8  # 16 at width 1.0


# --------------------------------------------------------------------------- cards


def test_cards_read_torchvision_metadata() -> None:
    cards = {c.name: c for c in plugin.visiontl_select("classification")}
    assert set(cards) >= {"resnet18", "squeezenet1_1", "vit_b_16", "swin_t", "regnet_y_800mf"}
    card = cards["resnet18"]
    assert card.id == "torchvision:resnet18" and card.tasks == ("classification",)
    assert card.params_m == pytest.approx(11.69, abs=0.01) and card.gmacs == pytest.approx(1.814)
    top1 = card.metric("top1")
    assert top1 is not None and top1.value == pytest.approx(69.758) and top1.dataset == "ImageNet-1k val"
    assert top1.source.startswith("https://github.com/pytorch/vision")
    assert card.weights == ("https://download.pytorch.org/models/resnet18-f37072fd.pth",)
    assert card.licence == "BSD-3-Clause (torchvision)" and "torchvision" in card.notes
    assert card.extras["file_size_mb"] == pytest.approx(44.661)
    assert cards["efficientnet_b3"].input_size == (300, 300)


def test_card_params_agree_with_the_built_architecture() -> None:
    import torchvision

    for card in plugin.visiontl_select("classification"):
        device = "cpu" if card.name.startswith("regnet") else "meta"
        with torch.device(device):
            model = torchvision.models.get_model(card.name)
        count = sum(p.numel() for p in model.parameters())
        assert count == card.extras["num_params"], card.id
