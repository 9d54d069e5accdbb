"""Weights: local files with key reports, and fast, clear failure when offline."""

from __future__ import annotations

import time

import pytest
import torch

from visiontl.contracts import BuildRequest
from visiontl.errors import WeightsError
from visiontl.ids import parse_model_id
from visiontl.weights import host_reachable, load_matching, read_state_dict, resolve_weights_path


def test_offline_timm_pretrained_fails_fast_and_clearly(monkeypatch, tmp_path):
    import visiontl_timm

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    if host_reachable("huggingface.co"):
        pytest.skip("huggingface.co is reachable from here: the offline path cannot be exercised")
    start = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        visiontl_timm.visiontl_build(BuildRequest(parse_model_id("timm:resnet18"), "classification", 2, pretrained=True))
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"took {elapsed:.1f} s"
    text = str(info.value)
    assert "timm:resnet18" in text and "huggingface.co" in text and "model.weights" in text


def test_visiontl_offline_switch_short_circuits(monkeypatch):
    monkeypatch.setenv("VISIONTL_OFFLINE", "1")
    assert host_reachable("example.org") is False


def test_read_state_dict_unwraps_checkpoints_and_dataparallel(tmp_path):
    sd = {"module.a.weight": torch.ones(2), "module.b": torch.zeros(1)}
    torch.save({"epoch": 3, "state_dict": sd}, tmp_path / "c.pth")
    assert set(read_state_dict(tmp_path / "c.pth")) == {"a.weight", "b"}


def test_read_state_dict_rejects_garbage(tmp_path):
    (tmp_path / "x.pth").write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="Cannot read"):
        read_state_dict(tmp_path / "x.pth")
    torch.save({"lr": 0.1}, tmp_path / "y.pth")
    with pytest.raises(WeightsError, match="no state_dict"):
        read_state_dict(tmp_path / "y.pth")


def test_load_matching_reports_loaded_missing_unexpected_reinitialised():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    sd = {"0.weight": torch.full((3, 4), 7.0), "0.bias": torch.zeros(3), "1.weight": torch.zeros(5, 3), "extra": torch.ones(1)}
    report = load_matching(model, sd, "file:x")
    assert report.loaded == 2 and report.reinitialised == ["1.weight"] and report.unexpected == ["extra"]
    # the re-initialised tensor is reported once (as the new head), not also as missing
    assert report.missing == ["1.bias"]
    assert torch.equal(model[0].weight, torch.full((3, 4), 7.0))


def test_load_matching_refuses_unrelated_weights():
    with pytest.raises(WeightsError, match="No tensor"):
        load_matching(torch.nn.Linear(2, 2), {"conv.weight": torch.ones(1)}, "file:x")


def test_missing_weights_file_names_where_it_looked(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights_path("nope.pth", tmp_path)


def test_read_state_dict_takes_a_str_as_well_as_a_path(tmp_path):
    torch.save({"a.weight": torch.ones(2)}, tmp_path / "w.pth")
    assert set(read_state_dict(str(tmp_path / "w.pth"))) == {"a.weight"}
    assert set(read_state_dict(tmp_path / "w.pth")) == {"a.weight"}


def test_the_run_report_counts_a_new_head_once(tmp_path):
    from visiontl.runs.layout import RunDir
    from visiontl.runs.report import write_report

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    source = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 5)).state_dict()
    weights = load_matching(model, source, "file:x").as_dict()
    assert weights["reinitialised"] == ["1.weight", "1.bias"] and weights["missing"] == []
    summary = {
        "model_id": "m:x", "task": "classification", "run_dir": str(tmp_path), "weights": weights, "strategy": "full",
        "phases": [{"name": "all", "epochs": 1}], "primary_metric": "accuracy", "best": {"epoch": 1, "accuracy": 0.5},
        "final": {"accuracy": 0.5}, "timings_s": {}, "data": {"classes": ["a", "b"], "images": {"train": 2}, "skipped_count": 0, "skipped": {}},
    }
    text = write_report(RunDir(tmp_path), summary, [], []).read_text()
    assert "- Weights: file:x (2 tensors loaded, new head (2 tensors), 0 missing)" in text
    assert "2 classes" in text

