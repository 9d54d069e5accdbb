"""torchvision segmentation: stock models and heads over a classifier's backbone (contract kit,
groups, aux classifier, weights from the SqueezeNet ImageNet file, offline behaviour, cards)."""

from __future__ import annotations

import time

import pytest
import torch

import visiontl_torchvision as plugin
from visiontl.contracts import BuildRequest, BuiltModel
from visiontl.errors import ConfigError, PluginError, UnknownModelError, WeightsError
from visiontl.ids import parse_model_id
from visiontl.tasks.segmentation import SegmentationTask
from visiontl.testing import check_groups_ordered, check_model_contract

TASK = SegmentationTask()
SQUEEZE = {"backbone": "torchvision:squeezenet1_1", "channels": 32}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(name: str, num_classes: int = 3, **kwargs: object) -> BuiltModel:
    built = plugin.visiontl_build(BuildRequest(parse_model_id(f"torchvision:{name}"), "segmentation", num_classes, **kwargs))
    assert built is not None
    return built


@pytest.mark.parametrize(
    ("name", "options", "groups"),
    [
        ("lraspp_mobilenet_v3_large", {}, ["stem", "stage1", "stage2", "stage3", "stage4", "stage5", "final_conv", "head"]),
        ("deeplabv3_mobilenet_v3_large", {"aux_loss": True}, ["stem", "stage1", "stage2", "stage3", "stage4", "stage5", "final_conv", "head", "aux"]),
        ("deeplabv3", SQUEEZE, ["stem", "stage1", "stage2", "stage3", "head"]),
        ("fcn", {"backbone": "timm:resnet10t"}, ["stem", "stage1", "stage2", "stage3", "stage4", "head"]),
    ],
)
def test_contract_kit(name, options, groups):
    report = check_model_contract(plugin, f"torchvision:{name}", task="segmentation", num_classes=3, input_size=(64, 64), options=options)
    assert report.groups == groups and report.frozen_checked > 0


def test_resnet_stock_models_group_like_their_classifier():
    built = build("deeplabv3_resnet50")
    groups = plugin.visiontl_freeze(built)
    check_groups_ordered(built.model, groups)
    names = {g.name: g for g in groups}
    assert list(names) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert set(names["stem"].params) == {"backbone.conv1.weight", "backbone.bn1.weight", "backbone.bn1.bias"}
    assert all(p.startswith("backbone.layer4.") for p in names["stage4"].params)
    assert all(p.startswith("classifier.") for p in names["head"].params)


def test_auxiliary_classifier_is_off_by_default_and_adds_its_loss_when_kept():
    plain = build("fcn_resnet50")
    assert plain.model.aux_classifier is None
    built = build("deeplabv3_mobilenet_v3_large", options={"aux_loss": True})
    model = built.model.train()
    batch = TASK.example_batch(3, (64, 64), 2)
    torch.manual_seed(0)  # the same dropout masks in both forwards
    outputs = model(batch.inputs)
    assert set(outputs) == {"out", "aux"} and outputs["aux"].shape == (2, 3, 64, 64)
    loss_fn = TASK.loss_function(_recipe(), _info(3))
    torch.manual_seed(0)
    loss, _ = TASK.forward_train(model, batch, loss_fn)
    assert loss.item() == pytest.approx((loss_fn(outputs["out"], batch.targets) + 0.5 * loss_fn(outputs["aux"], batch.targets)).item(), rel=1e-4)
    model.eval()
    with torch.no_grad():
        assert isinstance(model(batch.inputs), torch.Tensor)  # evaluation uses the main output only
    with pytest.raises(ConfigError, match="no auxiliary classifier"):
        build("lraspp_mobilenet_v3_large", options={"aux_loss": True})


def _recipe():
    from visiontl.config.schema import DataSection, ModelSection, Recipe

    return Recipe(task="segmentation", data=DataSection(root="x", format="masks"), model=ModelSection(id="torchvision:fcn_resnet50"))


def _info(n):
    from visiontl.tasks.base import DataInfo

    return DataInfo([f"c{i}" for i in range(n)])


def test_a_batch_of_one_trains_through_aspp_image_pooling():
    built = build("deeplabv3", options=SQUEEZE).model.train()
    batch = TASK.example_batch(3, (64, 64), 1)
    loss, _ = TASK.forward_train(built, batch, TASK.loss_function(_recipe(), _info(3)))
    loss.backward()
    assert torch.isfinite(loss)


def test_squeezenet_imagenet_features_load_into_the_backbone(squeezenet_weights, tmp_path):
    built = build("deeplabv3", 2, weights=squeezenet_weights, options=SQUEEZE)
    report = built.weights
    assert report.loaded == 50 and report.source == f"backbone file:{squeezenet_weights}"
    assert all(k.startswith("head.") for k in report.missing)
    state = torch.load(squeezenet_weights, weights_only=True)
    assert torch.equal(built.model.backbone.features[0].weight, state["features.0.weight"])
    assert torch.equal(built.model.backbone.features[12].expand3x3.bias, state["features.12.expand3x3.bias"])
    assert built.preprocessing.mean == (0.485, 0.456, 0.406)
    # A whole-model state dict of the same head loads into the whole model instead.
    whole = built.model.state_dict()
    torch.save(whole, tmp_path / "whole.pt")
    again = build("deeplabv3", 2, weights=tmp_path / "whole.pt", options=SQUEEZE)
    assert again.weights.loaded == len(whole) and not again.weights.missing
    assert torch.equal(again.model.head[4].weight, built.model.head[4].weight)


def test_a_classifier_state_dict_loads_into_a_stock_models_backbone(tmp_path):
    import torchvision

    classifier = torchvision.models.mobilenet_v3_large()
    torch.save(classifier.state_dict(), tmp_path / "mnv3.pt")
    built = build("lraspp_mobilenet_v3_large", weights=tmp_path / "mnv3.pt")
    assert built.weights.loaded == len(built.model.backbone.state_dict())
    assert torch.equal(built.model.backbone["16"][0].weight, classifier.features[16][0].weight)
    assert any(k.startswith("classifier.") for k in built.weights.unexpected)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("VISIONTL_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))


def test_published_weights_offline_fail_fast_with_model_source_and_fix(offline):
    for name, kwargs in (("deeplabv3_mobilenet_v3_large", {"pretrained": True}), ("lraspp_mobilenet_v3_large", {"options": {"weights_backbone": True}})):
        started = time.perf_counter()
        with pytest.raises(WeightsError) as err:
            build(name, **kwargs)
        assert time.perf_counter() - started < 10
        assert f"torchvision:{name}" in str(err.value) and "download.pytorch.org" in str(err.value)
    with pytest.raises(WeightsError, match="squeezenet1_1"):
        build("deeplabv3", pretrained=True, options=SQUEEZE)  # the backbone's family fails fast too


def test_errors_name_the_problem():
    with pytest.raises(UnknownModelError, match="Did you mean 'torchvision:deeplabv3_resnet50'"):
        build("deeplabv3_resnet05")
    with pytest.raises(ConfigError, match="model.options.backbone names the classifier"):
        build("deeplabv3")
    with pytest.raises(ConfigError, match="Did you mean 'atrous_rates'"):
        build("deeplabv3", options={**SQUEEZE, "atrous_rate": [1, 2]})
    with pytest.raises(ConfigError, match="Valid: IMAGENET"):
        build("lraspp_mobilenet_v3_large", options={"weights_backbone": "IMAGENET9"})
    with pytest.raises(PluginError, match="no feature map"):
        build("fcn", options={"backbone": "torchvision:vit_b_32"})


def test_cards_carry_torchvision_figures_with_provenance():
    cards = {c.id: c for c in plugin.visiontl_select("segmentation")}
    card = cards["torchvision:deeplabv3_resnet50"]
    assert card.metric("miou").value == 66.4 and "VOC" in card.metric("miou").dataset
    assert card.params_m == pytest.approx(42.0, abs=0.01) and card.gmacs == pytest.approx(178.722)
    assert "lraspp_mobilenet_v3_large" in plugin.visiontl_model_names("torchvision", "segmentation")
    assert "deeplabv3" in plugin.visiontl_model_names("torchvision", "segmentation")
