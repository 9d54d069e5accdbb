"""The timm plugin: contract kit, groups from group_matcher, split, names, options."""

from __future__ import annotations

import pytest
import torch

import visiontl_timm
from visiontl.contracts import BuildRequest
from visiontl.errors import ConfigError, UnknownModelError
from visiontl.ids import parse_model_id
from visiontl.testing import check_model_contract


def build(name: str, **kw):
    return visiontl_timm.visiontl_build(BuildRequest(parse_model_id(f"timm:{name}"), "classification", 3, **kw))


@pytest.mark.parametrize(
    "name,size",
    [("resnet10t", (64, 64)), ("efficientnet_b0", (64, 64)), ("mobilenetv3_small_050", (64, 64)), ("convnext_atto", (64, 64)), ("vit_tiny_patch16_224", (224, 224))],
)
def test_contract(name, size):
    report = check_model_contract(visiontl_timm, f"timm:{name}", input_size=size)
    assert report.groups[0] == "stem" and report.groups[-1] == "head"
    assert report.frozen_checked > 0


def test_resnet_groups_follow_timm():
    built = build("resnet18")
    groups = visiontl_timm.visiontl_freeze(built)
    assert [g.name for g in groups] == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert groups[-1].params == ("fc.weight", "fc.bias")
    assert groups[0].params == ("conv1.weight", "bn1.weight", "bn1.bias")


def test_feature_split_equals_the_model():
    for name in ("resnet10t", "efficientnet_b0", "convnext_atto"):
        model = build(name).model.eval()
        split = build(name).split
        built = build(name)
        model, split = built.model.eval(), built.split
        x = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.allclose(split.head(split.features(x)), model(x), atol=1e-5), name


def test_preprocessing_from_pretrained_cfg():
    pre = build("efficientnet_b0").preprocessing
    assert pre.input_size == (224, 224) and pre.interpolation == "bicubic" and pre.crop_pct == pytest.approx(0.875)


def test_unknown_name_and_bad_option():
    with pytest.raises(UnknownModelError, match="timm:efficientnet_b0"):
        build("efficientnet_bo")
    with pytest.raises(ConfigError, match="model.options"):
        build("resnet10t", options={"no_such_option": 1})


def test_tagged_names_are_accepted():
    assert build("resnet18.a1_in1k").model.fc.out_features == 3


def test_names_and_decline_other_families():
    names = visiontl_timm.visiontl_model_names(family="timm", task=None)
    assert "resnet18" in names and "resnet50.a1_in1k" in names
    assert visiontl_timm.visiontl_model_names(family="torchvision", task=None) is None
    assert visiontl_timm.visiontl_model_names(family="timm", task="detection") == []


def test_cards_count_parameters_on_the_meta_device():
    cards = {c.id: c for c in visiontl_timm.visiontl_select(task="classification")}
    assert cards["timm:resnet50"].params_m == pytest.approx(25.56, abs=0.01)
    assert cards["timm:efficientnet_b0"].params_m == pytest.approx(5.29, abs=0.01)
    assert visiontl_timm.visiontl_select(task="detection") is None
