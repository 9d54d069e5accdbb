"""Exporting segmenters (SMP, torchvision DeepLabV3/LR-ASPP/FCN, a head over a classification
backbone) to ONNX and OpenVINO fp32/bf16/int8, verified on PennFudan masks by mIoU and
per-class IoU beside PyTorch's."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: The head over the ImageNet SqueezeNet of segment_pennfudan_squeezenet.yaml, made small.
HEAD_OVER_BACKBONE = ("torchvision:deeplabv3", {"backbone": "torchvision:squeezenet1_1", "channels": 32})


def checkpoint(shared_data: Path, folder: Path, model_id: str, options: dict) -> Path:
    """A checkpoint of ``model_id`` (untrained head) whose recipe reads PennFudan masks at
    64 px: 6 training images and 3 validation (data.limit caps each split)."""
    from visiontl.api import prepare
    from visiontl.config.loader import recipe_to_dict, validate_recipe
    from visiontl.train.checkpoint import save_checkpoint

    weights = {"weights": "weights/squeezenet1_1_imagenet_features.pth"} if "backbone" in options else {}
    recipe = validate_recipe({
        "task": "segmentation",
        "data": {"format": "masks", "root": "pennfudan", "images": "images", "masks": "masks", "val_last": 3, "limit": 6,
                 "class_names": ["background", "person"], "image_size": 64},
        "model": {"id": model_id, "pretrained": False, "options": options, **weights},
    }, "test")
    prepared = prepare(recipe, data_root=shared_data)
    path = folder / (model_id.replace(":", "_") + ".pt")
    save_checkpoint(path, {"model_id": model_id, "task": "segmentation", "class_names": prepared.info.class_names,
                           "preprocessing": asdict(prepared.built.preprocessing), "recipe": recipe_to_dict(recipe),
                           "weights": prepared.built.weights.as_dict(), "model": prepared.built.model.state_dict()})
    return path


def assert_reports_iou(verification: dict) -> None:
    """mIoU and the IoU of every class, for PyTorch and the export, and their difference."""
    for side in ("pytorch_fp32", "export"):
        assert {"miou", "iou_background", "iou_person"} <= set(verification[side])
    assert {"miou", "iou_background", "iou_person"} <= set(verification["deltas"])


@pytest.mark.parametrize(
    ("model_id", "options"),
    [HEAD_OVER_BACKBONE, ("torchvision:lraspp_mobilenet_v3_large", {}), ("torchvision:fcn_resnet50", {}),
     ("smp:linknet-resnet18", {}), ("smp:segformer-mit_b0", {})],
    ids=["deeplabv3-over-squeezenet", "lraspp", "fcn", "smp-linknet", "smp-segformer"],
)
def test_every_kind_of_segmenter_exports_to_onnx_fp32_and_matches_pytorch(model_id, options, shared_data, tmp_path):
    from visiontl.export.pipeline import export

    ckpt = checkpoint(shared_data, tmp_path, model_id, options)
    report = export(ckpt, "onnx", "fp32", out=tmp_path, data_root=shared_data, threads=1)
    ver = report.manifest.verification
    assert report.passed and ver["images"] == 3 and ver["agreement_unit"] == "pixels (arg-max)"
    assert ver["agreement"] >= 0.9999 and ver["max_abs_diff"] < 1e-2
    assert_reports_iou(ver)
    assert all(abs(d) < 1e-4 for d in ver["deltas"].values())
    assert report.manifest.input["shape"] == [None, 3, None, None]


def test_openvino_fp32_bf16_int8_and_onnx_int8_report_the_cost_per_class(shared_data, tmp_path):
    from visiontl.export.pipeline import export

    ckpt = checkpoint(shared_data, tmp_path, *HEAD_OVER_BACKBONE)
    fp32 = export(ckpt, "openvino", "fp32", out=tmp_path, data_root=shared_data, threads=1)
    assert fp32.passed and fp32.manifest.verification["agreement"] >= 0.9999 and "fp32 must reproduce" in fp32.manifest.verification["rule"]
    assert_reports_iou(fp32.manifest.verification)
    for fmt, precision in (("openvino", "bf16"), ("openvino", "int8"), ("onnx", "int8")):
        report = export(ckpt, fmt, precision, out=tmp_path, data_root=shared_data, threads=1, force=True)
        ver = report.manifest.verification
        assert_reports_iou(ver)
        assert report.passed == (ver["delta"] >= -0.01) and f"({precision}:" in ver["rule"]
        if precision == "int8":
            assert report.manifest.calibration["images"] == 6 and report.size_bytes < fp32.size_bytes
