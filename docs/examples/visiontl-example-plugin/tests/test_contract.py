"""The contract kit of visiontl.testing, run on every tinycnn model for both tasks, plus the
build errors a user can meet."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from visiontl.contracts import BuildRequest
from visiontl.errors import ConfigError, UnknownModelError, WeightsError
from visiontl.ids import parse_model_id
from visiontl.testing import check_model_contract

import visiontl_example
from visiontl_example.models import VARIANTS


@pytest.mark.parametrize("task", ["classification", "multilabel"])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_model_contract(name, task):
    report = check_model_contract(visiontl_example, f"tinycnn:{name}", task=task, num_classes=3, input_size=(32, 32))
    stages = len(VARIANTS[name][1])
    assert report.groups == ["stem", *(f"stage{i}" for i in range(1, stages + 1)), "head"]
    assert report.frozen_checked > 0 and report.buffers_checked > 0  # BN buffers really compared
    assert report.benchmark is not None and report.benchmark.params == report.params


@pytest.mark.parametrize("model_id", ["timm:resnet10t", "torchvision:squeezenet1_1"])
def test_the_multilabel_task_over_built_in_families(model_id, installed):
    # plugin=None: the installed plugins, this one included. The task declares its output
    # (IMAGE_VECTOR): timm and torchvision classifiers build for it, with no code here.
    report = check_model_contract(None, model_id, task="multilabel", num_classes=3, input_size=(32, 32), benchmark=False)
    assert report.groups[-1] == "head" and report.frozen_checked > 0


def test_tinycnn_builds_for_any_image_vector_task_and_refuses_others(plugins):
    from visiontl.contracts import DENSE_MAP, IMAGE_VECTOR

    built = _build(plugins, "tinycnn:nano", task="someone_elses_regression", num_classes=1, output=IMAGE_VECTOR)
    assert tuple(built.model(torch.rand(2, 3, 32, 32)).shape) == (2, 1)
    with pytest.raises(ConfigError, match="image-level vector"):
        _build(plugins, "tinycnn:nano", task="depth", output=DENSE_MAP)


def _build(plugins, model_id: str, **kwargs):
    request = BuildRequest(model_id=parse_model_id(model_id), task=kwargs.pop("task", "multilabel"), num_classes=kwargs.pop("num_classes", 3), **kwargs)
    return plugins.hook.visiontl_build(request=request)


def test_unknown_name_suggests_the_nearest(plugins):
    with pytest.raises(UnknownModelError, match="nano"):
        _build(plugins, "tinycnn:nanoo")


def test_other_families_are_declined(plugins):
    request = BuildRequest(model_id=parse_model_id("otherfamily:nano"), task="multilabel", num_classes=3)
    assert visiontl_example.visiontl_build(request) is None
    assert visiontl_example.visiontl_model_names("otherfamily", None) is None
    assert visiontl_example.visiontl_select("detection") is None


def test_pretrained_weights_fail_at_once_with_the_fix(plugins):
    started = time.perf_counter()
    with pytest.raises(WeightsError, match="no published pretrained weights") as info:
        _build(plugins, "tinycnn:nano", pretrained=True)
    assert time.perf_counter() - started < 2 and "model.weights" in str(info.value)


def test_a_weights_file_transfers_everything_but_a_head_of_another_size(plugins, tmp_path):
    source = _build(plugins, "tinycnn:micro", num_classes=5).model
    path = tmp_path / "micro5.pt"
    torch.save(source.state_dict(), path)
    built = _build(plugins, "tinycnn:micro", num_classes=3, weights=path)
    assert sorted(built.weights.reinitialised) == ["head.bias", "head.weight"]
    assert built.weights.loaded == len(source.state_dict()) - 2
    assert torch.equal(built.model.stem[0].weight, source.stem[0].weight)


def test_options_are_checked(plugins):
    built = _build(plugins, "tinycnn:nano", options={"dropout": 0.2})
    assert built.model.dropout.p == 0.2
    with pytest.raises(ConfigError, match="dropout"):
        _build(plugins, "tinycnn:nano", options={"drop_rate": 0.2})
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        _build(plugins, "tinycnn:nano", options={"dropout": 1.5})


def test_importing_the_plugin_does_not_import_torch():
    code = "import sys, visiontl_example; visiontl_example.visiontl_select('classification'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_the_catalogue_file_is_current():
    from visiontl_example.catalogue import cards, generate

    assert [c.as_dict() for c in cards()] == generate(), "regenerate with: python -m visiontl_example.catalogue"
    assert {c.id for c in cards()} == {f"tinycnn:{n}" for n in VARIANTS}
