"""``visiontl export``: ONNX, OpenVINO and TorchScript exports of tiny runs, verified on images."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from conftest import ROOT, train_tiny_run
from visiontl.cli import cli
from visiontl.export.errors import ExportError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shapes_root) -> Path:
    """A tiny trained classification run (resnet10t, 32 px, 2 epochs on the shapes dataset)."""
    return train_tiny_run(tmp_path_factory, shapes_root, "export_runs", epochs=2)


def export(*args: str):
    return CliRunner().invoke(cli, ["export", *args, "--threads", "1"], catch_exceptions=False)


def test_onnx_export_has_a_dynamic_batch_and_agrees_with_pytorch(tiny_run):
    result = export(str(tiny_run), "--format", "onnx", "--json")
    report = json.loads(result.output)
    ver = report["verification"]
    assert report["passed"] and report["exporter"] == "visiontl" and report["precision"] == "fp32"
    assert ver["images"] == 18 and ver["agreement"] == 1.0 and ver["agreement_unit"] == "images (top-1)"
    assert ver["max_abs_diff"] < 1e-3 and ver["delta"] == 0.0 and ver["pytorch_fp32"]["accuracy"] == ver["export"]["accuracy"]
    onnx_file = Path(report["files"][0])
    assert onnx_file.parent == tiny_run / "exports" and onnx_file.suffix == ".onnx"
    # the file runs on ONNX Runtime at another batch size and matches the PyTorch model
    import onnxruntime as ort

    from visiontl.api import load_trained

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 32, 32)
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = load_trained(tiny_run).model(x)
    assert out.shape == (3, 3) and np.abs(out - expected.numpy()).max() < 1e-3
    # recorded next to the export and in the run
    manifest = json.loads(Path(report["manifest"]).read_text())
    assert manifest["input"]["shape"] == [None, 3, 32, 32] and manifest["layout"]["kind"] == "tensor"
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["exports"]["onnx-fp32"]["passed"] is True and summary["exports"]["onnx-fp32"]["agreement"] == 1.0
    assert "## Exports" in (tiny_run / "report.md").read_text() and "onnx-fp32" in (tiny_run / "report.md").read_text()


def test_openvino_fp32_bf16_and_int8_are_verified(tiny_run, shapes_root, tmp_path):
    from visiontl.export.pipeline import export as export_run

    fp32 = export_run(tiny_run, "openvino", "fp32", out=tmp_path, threads=1)
    assert fp32.passed and fp32.manifest.verification["agreement"] == 1.0 and fp32.manifest.verification["max_abs_diff"] < 1e-3
    assert [f.suffix for f in fp32.files] == [".xml", ".bin"] and fp32.manifest.runtime["inference_precision"] == "f32"
    # fp32 must run in fp32 even on CPUs whose OpenVINO default is bf16
    assert fp32.manifest.verification["runtime_settings"]["inference_precision"] == "f32"
    bf16 = export_run(tiny_run, "openvino", "bf16", out=tmp_path, threads=1)
    assert bf16.manifest.runtime["inference_precision"] == "bf16"
    assert bf16.manifest.verification["runtime_settings"]["inference_precision"] in ("bf16", "f32")  # f32 where the CPU has no bf16
    int8 = export_run(tiny_run, "openvino", "int8", out=tmp_path, threads=1, calib=shapes_root / "train", force=True)
    cal, ver = int8.manifest.calibration, int8.manifest.verification
    assert cal["source"] == str(shapes_root / "train") and cal["images"] == 36 and "NNCF" in cal["method"]
    assert int8.size_bytes < fp32.size_bytes
    # int8 is either within a point of fp32 or says by how much it is not
    assert int8.passed == (ver["delta"] >= -0.01)
    if not int8.passed:
        assert "dropped" in int8.problems[0]
    # beyond its bound (here: any cost at all counts), int8 is refused unless forced
    with pytest.raises(ExportError, match="Refused: the openvino int8 export.*--force"):
        export_run(tiny_run, "openvino", "int8", out=tmp_path, threads=1, calib=shapes_root / "train", tolerance=-1.0)


def test_onnx_int8_calibrates_on_the_run_training_images_by_default(tiny_run, tmp_path):
    from visiontl.export.pipeline import export as export_run

    report = export_run(tiny_run, "onnx", "int8", out=tmp_path / "q.onnx", threads=1)
    assert report.files == [tmp_path / "q.onnx"]
    cal = report.manifest.calibration
    assert cal["source"].startswith("training images of the run") and cal["images"] == 36 and "QDQ" in cal["method"]
    assert report.manifest.verification["images"] == 18


def test_torchscript_fp32_is_exact_and_loads_back(tiny_run, tmp_path):
    from visiontl.export.manifest import find_manifest
    from visiontl.export.pipeline import export as export_run
    from visiontl.export.runtime import load_runtime

    report = export_run(tiny_run, "torchscript", "fp32", out=tmp_path, threads=1)
    assert report.passed and report.manifest.verification["max_abs_diff"] < 1e-5
    module = load_runtime(find_manifest(report.files[0]))
    assert module(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_cli_prints_the_verification_and_strict_fails_on_a_drop(tiny_run, tmp_path):
    result = export(str(tiny_run), "--format", "torchscript", "--out", str(tmp_path))
    assert result.exit_code == 0
    assert "verified on 18 validation images" in result.output and "agreement 100.00% of 18 images (top-1)" in result.output
    assert "verification: passed" in result.output
    # an impossible tolerance (the metric must improve) makes --strict exit 1 and say why
    result = CliRunner().invoke(cli, ["export", str(tiny_run), "--format", "torchscript", "--out", str(tmp_path), "--tolerance", "-0.5", "--strict"])
    assert result.exit_code == 1 and "verification: FAILED" in result.output and "beyond the tolerance" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "onnx", "--precision", "bf16"], "The onnx export supports precisions fp32, int8, not 'bf16'"),
        (["--format", "torchscript", "--precision", "int8"], "--format onnx / openvino for int8"),
    ],
)
def test_unsupported_precisions_are_clear_errors(tiny_run, args, message):
    result = CliRunner().invoke(cli, ["export", str(tiny_run), *args])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_unknown_format_and_missing_openvino_are_clear(monkeypatch, tiny_run):
    from visiontl.export import formats

    with pytest.raises(ExportError, match="Did you mean 'openvino'"):
        formats.get_format("openvin")
    real = formats.importlib.util.find_spec
    monkeypatch.setattr(formats.importlib.util, "find_spec", lambda name: None if name in ("openvino", "nncf") else real(name))
    result = CliRunner().invoke(cli, ["export", str(tiny_run), "--format", "openvino", "--precision", "int8"])
    assert result.exit_code == 1
    assert "needs openvino, nncf, which are not installed" in result.output and "pip install 'visiontl[export]'" in result.output


def test_models_that_cannot_be_traced_say_why():
    from visiontl.export.graph import exportable

    class Detector(nn.Module):
        def forward(self, x):
            return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]

    with pytest.raises(ExportError, match="per image.*cannot trace.*Ultralytics"):
        exportable(Detector(), torch.rand(1, 3, 32, 32), "torchvision:fasterrcnn_resnet50_fpn")

    class Broken(nn.Module):
        def forward(self, x):
            return x.view(7, -1)

    with pytest.raises(ExportError, match="does not run on an input of shape"):
        exportable(Broken(), torch.rand(1, 3, 32, 32), "x:broken")


def test_mapping_outputs_export_and_come_back_as_a_mapping(tmp_path):
    """torchvision segmentation returns {"out", "aux"}: the export keeps the form."""
    from visiontl.contracts import Preprocessing
    from visiontl.export.convert import ModelToExport, convert
    from visiontl.export.manifest import manifest_path_for
    from visiontl.export.runtime import load_runtime

    class Seg(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3, padding=1)

        def forward(self, x):
            return {"out": self.conv(x), "aux": None}

    model = Seg().eval()
    item = ModelToExport(model, "x:seg", "segmentation", ["a", "b"], Preprocessing(input_size=(32, 32)))
    convert(item, "onnx", "fp32", tmp_path / "seg.onnx")
    module = load_runtime(manifest_path_for(tmp_path / "seg.onnx"))
    x = torch.randn(2, 3, 48, 40)  # dense tasks take any size
    out = module(x)
    assert set(out) == {"out"} and torch.allclose(out["out"], model(x)["out"], atol=1e-4)


def test_calibration_folder_must_hold_images(tmp_path):
    from visiontl.contracts import Preprocessing
    from visiontl.errors import DataError
    from visiontl.export.images import calibration_from_folder

    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="No readable images"):
        calibration_from_folder(tmp_path, Preprocessing(input_size=(32, 32)))


def test_ultralytics_models_go_through_ultralytics_exporter(tmp_path):
    """A tiny yolov8n checkpoint: ONNX by Ultralytics' exporter, run behind the same wrapper
    (letterbox, NMS) and scored by the same detection evaluator; int8 is refused clearly."""
    sys.path.insert(0, str(ROOT / "tests"))
    from detection_fixtures import make_coco

    from visiontl.api import prepare
    from visiontl.config.loader import recipe_to_dict, validate_recipe
    from visiontl.export.pipeline import export as export_run
    from visiontl.train.checkpoint import save_checkpoint

    root = tmp_path / "ds"
    make_coco(root, n=6)
    recipe = validate_recipe({"task": "detection", "data": {"format": "coco", "root": str(root), "train": "annotations.json",
                                                            "images": "images", "val": None, "val_last": 3},
                              "model": {"id": "ultralytics:yolov8n", "options": {"imgsz": 64}}}, "test")
    prepared = prepare(recipe, data_root=tmp_path)
    checkpoint = tmp_path / "yolo.pt"
    save_checkpoint(checkpoint, {"model_id": "ultralytics:yolov8n", "task": "detection", "class_names": prepared.info.class_names,
                                 "preprocessing": asdict(prepared.built.preprocessing), "recipe": recipe_to_dict(recipe),
                                 "weights": prepared.built.weights.as_dict(), "model": prepared.built.model.state_dict()})
    report = export_run(checkpoint, "onnx", "fp32", threads=1, data_root=tmp_path)
    ver = report.manifest.verification
    assert report.manifest.exporter == "ultralytics" and report.files[0].suffix == ".onnx"
    assert report.files[0].parent == tmp_path / "exports"
    assert ver["images"] == 3 and ver["compared"] >= 3 and ver["agreement"] == 1.0 and ver["max_abs_diff"] < 0.05
    assert ver["primary_metric"] == "map" and abs(ver["delta"]) < 1e-6
    # ONNX int8: ONNX Runtime static QDQ on the convolutions, the head's outputs in float
    report = export_run(checkpoint, "onnx", "int8", threads=1, data_root=tmp_path, force=True)
    assert report.files[0].suffix == ".onnx" and report.manifest.calibration["letterbox"] == 64
    assert report.manifest.calibration["op_types"] == ["Conv"] and report.manifest.verification["images"] == 3
    # OpenVINO int8: Ultralytics' fp32 IR quantised by NNCF on the run's training images,
    # letterboxed as at inference, then verified like every export
    report = export_run(checkpoint, "openvino", "int8", threads=1, data_root=tmp_path)
    manifest = report.manifest
    assert manifest.exporter == "ultralytics" and [f.suffix for f in report.files] == [".xml", ".bin"]
    assert all(f.is_file() for f in report.files) and len(list(report.files[0].parent.glob("*.xml"))) == 1
    assert manifest.calibration["images"] == 3 and manifest.calibration["letterbox"] == 64 and "NNCF" in manifest.calibration["method"]
    assert manifest.verification["images"] == 3 and manifest.verification["primary_metric"] == "map"


def test_recipe_export_section_exports_every_format_and_checks_precisions_first(tiny_run, shapes_root, monkeypatch):
    """What a recipe's ``export:`` section runs at the end of a run: every format, recorded in
    the run; a relative ``calib`` is found under the data root; impossible pairs fail up front."""
    from visiontl.export.pipeline import check_section, export_section

    monkeypatch.chdir(shapes_root.parent)  # "train" must not resolve from the working directory
    reports = export_section(tiny_run, ["onnx", "openvino"], "int8", calib="train", data_root=shapes_root, threads=1)
    assert [(r.manifest.format, r.manifest.precision) for r in reports] == [("onnx", "int8"), ("openvino", "int8")]
    assert all(r.manifest.calibration["source"] == str(shapes_root / "train") for r in reports)
    exports = json.loads((tiny_run / "summary.json").read_text())["exports"]
    assert {"onnx-int8", "openvino-int8"} <= set(exports)
    with pytest.raises(ExportError, match="not available for export.formats torchscript"):
        check_section(["onnx", "torchscript"], "int8")
