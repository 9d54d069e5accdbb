"""``visiontl benchmark``: the harness's method and fields, formats, verdicts, outputs, errors."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from conftest import train_tiny_run
from visiontl.benchmark import harness
from visiontl.cli import cli
from visiontl.contracts import BenchmarkRequest, BenchmarkResult

FAST = ["--threads", "1", "--warmup", "1", "--repeats", "3", "--min-seconds", "0.02"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shapes_root) -> Path:
    """A tiny trained classification run (resnet10t, 32 px, 1 epoch on the shapes dataset)."""
    return train_tiny_run(tmp_path_factory, shapes_root, "bench_runs", epochs=1)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


class Sleeper(nn.Module):
    """A fake slow model: call i sleeps ``schedule[i % len(schedule)]`` seconds."""

    def __init__(self, schedule: list[float]) -> None:
        super().__init__()
        self.schedule = schedule
        self.calls = 0
        self.weight = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.schedule[self.calls % len(self.schedule)])
        self.calls += 1
        return x.mean((2, 3)) + self.weight


# --------------------------------------------------------------------------- the harness


def test_percentile_matches_numpy():
    values = sorted(np.random.default_rng(0).random(37).tolist())
    for q in (0, 10, 50, 90, 99, 100):
        assert harness.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_fake_slow_model_gives_known_percentiles_and_syncs_around_every_clock_read(monkeypatch):
    """8 fast calls then 2 slow ones, repeated: p50 is the fast time, p90 the slow one."""
    syncs: list[str] = []
    monkeypatch.setattr(harness, "_sync", lambda device: syncs.append(device.type))
    model = Sleeper([0.002] * 8 + [0.030] * 2)
    request = BenchmarkRequest(input_size=(8, 8), warmup=3, min_repeats=40, min_seconds=0.0)
    result = harness.benchmark_module(model, "sleeper", request)
    assert 2.0 <= result.latency_ms_p50 < 15.0, result.latency_ms_p50
    assert result.latency_ms_p90 >= 29.0, result.latency_ms_p90
    assert result.extras["latency_ms_mean"] > result.latency_ms_p50
    assert result.repeats >= 40 and model.calls == result.repeats + 3 + 1  # warm-up, timed, one MAC count
    # one synchronisation after the warm-up, then one before and one after every timed call
    assert len(syncs) == 1 + 2 * result.repeats and set(syncs) == {"cpu"}


def test_stability_rule_keeps_timing_until_the_median_settles():
    """A model that keeps getting slower never has agreeing halves: timing runs to the time
    limit (2 s) and says the median was not stable; a steady one stops as soon as it may."""
    calls = []

    def drifting() -> None:
        time.sleep(0.001 + 0.0001 * len(calls))
        calls.append(1)

    request = BenchmarkRequest(input_size=(8, 8), warmup=0, min_repeats=20, min_seconds=0.0)
    timing = harness.timed_loop(drifting, torch.device("cpu"), request)
    assert not timing.stable and timing.wall_s >= 2.0
    steady = Sleeper([0.001])
    timing = harness.timed_loop(lambda: steady(torch.zeros(1, 3, 8, 8)), torch.device("cpu"), request)
    assert timing.stable and len(timing.times) < 100


def test_generic_hook_result_has_every_field_and_the_conditions():
    from visiontl.plugin_manager import get_plugins

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    request = BenchmarkRequest(input_size=(16, 16), threads=1, warmup=1, min_repeats=5, min_seconds=0.0)
    result = get_plugins().hook.visiontl_benchmark(model=model, built=None, request=request)
    assert isinstance(result, BenchmarkResult)
    assert all(getattr(result, f) is not None for f in BenchmarkResult.REQUIRED_FIELDS)
    assert result.threads == 1 and result.params == sum(p.numel() for p in model.parameters())
    assert result.macs == 8 * 27 * 14 * 14 + 16  # conv + linear multiply-accumulates
    assert result.peak_memory_mb and result.peak_memory_mb > 10 and "RSS" in result.extras["peak_memory_kind"]
    assert {"torch", "python"} <= set(result.versions) and result.extras["cpu"]


# --------------------------------------------------------------------------- the command


def test_json_rows_record_the_conditions_and_bf16_fp16_are_handled():
    result = invoke("benchmark", "timm:resnet10t", "--input-size", "32", "--batch", "1,2", "--precision", "fp32,bf16,fp16", *FAST, "--json")
    data = json.loads(result.output[result.output.index("{"):])
    rows = data["rows"]
    assert [(r["precision"], r["batch"]) for r in rows] == [("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2)]
    for row in rows:
        assert row["threads"] == 1 and row["device"] == "cpu" and row["input_size"] == "32x32" and row["weights"] == "random"
        assert row["latency_ms_p90"] >= row["latency_ms_p50"] > 0 and row["throughput_ips"] > 0
        assert row["params"] > 1e6 and row["macs"] > 0 and row["file_size_mb"] > 1 and row["peak_memory_mb"] > 0
        assert "torch" in row["versions"] and row["repeats"] >= 3
    assert rows[1]["throughput_ips"] == pytest.approx(2 / (rows[1]["latency_ms_p50"] / 1000))
    assert data["skipped"] == [{"target": "timm:resnet10t", "what": "torch fp16", "reason": "fp16 autocast needs a CUDA device (use bf16 on the CPU)"}]
    assert any("fastest is" in v for v in data["verdicts"])


def test_formats_on_a_trained_run_with_accuracy_csv_and_pareto_plot(tiny_run, shapes_root, tmp_path):
    out_csv, plot = tmp_path / "bench.csv", tmp_path / "pareto.png"
    result = invoke("benchmark", str(tiny_run), "--formats", "torch,torchscript,onnx,onnx-int8", "--data", str(shapes_root),
                    *FAST, "--csv", "--out", str(out_csv), "--plot", str(plot))
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert [r["format"] for r in rows] == ["torch", "torchscript", "onnx", "onnx-int8"]
    assert [r["precision"] for r in rows] == ["fp32", "fp32", "fp32", "int8"]
    acc = {r["format"]: float(r["accuracy"]) for r in rows}
    # the float exports compute the same function as PyTorch: the same accuracy on the same images
    assert acc["torchscript"] == acc["onnx"] == acc["torch"] and all(r["metric"] == "accuracy" for r in rows)
    assert all(r["accuracy_images"] == "18" for r in rows)
    assert float(rows[3]["file_size_mb"]) < float(rows[2]["file_size_mb"]) / 2  # int8 weights
    assert sum(r["fastest"] == "True" for r in rows) == 1 and rows[0]["speedup_vs_torch_fp32"] == "1.0"
    assert json.loads(rows[3]["runtime"])["calibration"]["images"] > 0
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_names_the_fastest_and_compares_int8_with_its_float_format(tiny_run):
    result = invoke("benchmark", str(tiny_run), "--formats", "onnx,onnx-int8", *FAST)
    assert result.exit_code == 0
    assert "p50 ms" in result.output and "vs torch" in result.output
    verdicts = [line for line in result.output.splitlines() if ", batch 1:" in line]
    assert verdicts[0].count("fastest is") == 1
    assert any("onnx-int8 int8 is SLOWER than onnx fp32" in v or "onnx-int8 int8 is" in v and "x onnx fp32" in v for v in verdicts)


def test_ensemble_recipe_is_measured_next_to_its_members(tiny_run, tmp_path):
    recipe = tmp_path / "ensemble.yaml"
    recipe.write_text(yaml.safe_dump({"task": "classification", "data": {"root": "unused"}, "model": {"id": "timm:resnet10t"},
                                      "ensemble": {"members": [str(tiny_run), str(tiny_run)]}}))
    result = invoke("benchmark", str(recipe), *FAST, "--json")
    data = json.loads(result.output[result.output.index("{"):])
    targets = [r["target"] for r in data["rows"]]
    assert targets[0] == str(recipe) and len(targets) == 3 and all(t.startswith(f"{recipe}#") for t in targets[1:])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["timm:resnet10t", "--formats", "onnx,tensorrt"], "Unknown format 'tensorrt'"),
        (["timm:resnet10t", "--formats", "onx"], "Did you mean 'onnx'?"),
        (["timm:resnet10t", "--precision", "fp8"], "Unknown precision 'fp8'"),
        (["timm:resnet10t", "--batch", "1,zero"], "Batch size 'zero' is not a positive integer"),
        (["no/such/run"], "neither an existing run, checkpoint or recipe nor a model id"),
        (["timm:resnt10t"], "Did you mean 'timm:resnet10t'"),
        (["timm:resnet10t", "--json", "--csv"], "--json and --csv are exclusive"),
    ],
)
def test_bad_input_is_one_clear_line(args, message):
    result = CliRunner().invoke(cli, ["benchmark", *args, *FAST])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_format_that_cannot_export_is_skipped_with_its_reason(monkeypatch):
    """OpenVINO missing (simulated): torch is measured, openvino is listed with the install line."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr("visiontl.export.formats.importlib.util.find_spec", lambda name: None if name == "openvino" else real(name))
    result = invoke("benchmark", "timm:resnet10t", "--input-size", "32", "--formats", "torch,openvino", *FAST, "--json")
    data = json.loads(result.output[result.output.index("{"):])
    assert [r["format"] for r in data["rows"]] == ["torch"]
    reason = data["skipped"][0]["reason"]
    assert "needs openvino" in reason and "pip install 'visiontl[export]'" in reason


def test_masks_add_the_cam_energy_score_to_every_row(shapes_root, tmp_path):
    from PIL import Image

    # three images with a known object mask: the left half (chance 0.5, also in the centre crop
    # the model sees)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, source in enumerate(sorted((shapes_root / "val").rglob("*.png"))[:3]):
        Image.open(source).convert("RGB").resize((64, 64)).save(tmp_path / "images" / f"im{i}.png")
        mask = np.zeros((64, 64), np.uint8)
        mask[:, :32] = 1
        Image.fromarray(mask).save(tmp_path / "masks" / f"im{i}.png")
    # a bare model id (random weights) is explained through its layer groups; EigenCAM needs no
    # trained class score, so the CAM is not zero
    args = ["benchmark", "timm:resnet10t", "--input-size", "64", "--masks", str(tmp_path / "masks"), "--cam-method", "eigencam", *FAST]
    result = invoke(*args, "--json")
    rows = json.loads(result.output[result.output.index("{"):])["rows"]
    assert rows and all(row["cam_images"] == 3 and row["cam_method"] == "eigencam" for row in rows)
    assert all(row["cam_chance"] == pytest.approx(0.5, abs=0.02) and 0.0 <= row["cam_energy_in_mask"] <= 1.0 for row in rows)
    table = invoke(*args).output
    assert "CAM energy inside the object masks" in table and "eigencam" in table


def test_an_ultralytics_detector_is_measured_at_the_size_asked_for():
    # the YOLO wrapper letterboxes to its imgsz: --input-size must reach it, not only the row
    result = invoke("benchmark", "ultralytics:yolov8n", "--input-size", "64", "--json", *FAST)
    row = json.loads(result.output[result.output.index("{"):])["rows"][0]
    assert row["input_size"] == "64x64" and row["task"] == "detection"
    assert not any("plugin reports input size" in note for note in row.get("notes") or [])
    assert row["macs"] < 0.1e9  # 0.044 GMACs at 64 px (8.7 at 640)
