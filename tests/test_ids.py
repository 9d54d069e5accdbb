import pytest

from visiontl.errors import ConfigError, UnknownModelError
from visiontl.ids import ModelId, parse_model_id, suggest, unknown_model


def test_parse_family_and_name():
    assert parse_model_id("timm:efficientnet_b0") == ModelId("timm", "efficientnet_b0")
    assert parse_model_id(" TIMM:resnet50.a1_in1k ") == ModelId("timm", "resnet50.a1_in1k")
    assert str(parse_model_id("smp:unet-resnet34")) == "smp:unet-resnet34"


@pytest.mark.parametrize("bad", ["efficientnet_b0", "timm:", ":resnet", "ti mm:x", "timm:a b"])
def test_malformed_ids_name_the_grammar(bad):
    with pytest.raises(ConfigError) as info:
        parse_model_id(bad)
    assert "family:name" in str(info.value) or "malformed" in str(info.value)
    assert "visiontl models" in str(info.value)


def test_unknown_model_suggests_and_points_to_the_listing():
    err = unknown_model(ModelId("timm", "resnt18"), ["resnet18", "resnet34", "vit_tiny"])
    assert isinstance(err, UnknownModelError)
    assert "Did you mean 'timm:resnet18'" in str(err)
    assert "visiontl models --family timm" in str(err)


def test_suggest_is_case_insensitive():
    assert suggest("ResNet18", ["resnet18", "vgg"]) == ["resnet18"]
