"""Exporting torchvision detectors: the whole detector as one per-image graph (ONNX, OpenVINO
fp32/bf16/int8), verified against PyTorch on PennFudan images by box/mask mAP, agreement and
matched-box IoU; refusals that say why; fp32 that differs from PyTorch fails loudly."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import visiontl_torchvision as plugin
from visiontl.contracts import BuildRequest
from visiontl.export.errors import ExportError
from visiontl.ids import parse_model_id

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Tiny R-CNN settings (as in test_torchvision_detection.py) with every detection kept, so that
# an untrained detector still gives the verification something to compare.
RCNN = {"min_size": 64, "max_size": 96, "rpn_pre_nms_top_n_test": 64, "rpn_post_nms_top_n_test": 32,
        "box_detections_per_img": 20, "box_score_thresh": 0.0}
SQUEEZE = {"backbone": "torchvision:squeezenet1_1", "representation_size": 64, **RCNN}
ONE_STAGE = {"min_size": 64, "max_size": 96, "topk_candidates": 64, "detections_per_img": 20, "score_thresh": 0.0}
PICKS = ("FudanPed00001.png", "PennPed00052.png")


def checkpoint(shared_data: Path, folder: Path, name: str, task: str, options: dict) -> Path:
    """A checkpoint of ``torchvision:<name>`` (untrained heads, ImageNet SqueezeNet backbone
    for the custom-backbone ids) whose recipe reads PennFudan: 8 training images and 3
    validation."""
    from visiontl.api import prepare
    from visiontl.config.loader import recipe_to_dict, validate_recipe
    from visiontl.train.checkpoint import save_checkpoint

    weights = {"weights": "weights/squeezenet1_1_imagenet_features.pth"} if "backbone" in options else {}
    recipe = validate_recipe({
        "task": task,
        "data": {"format": "coco", "root": "pennfudan", "train": "annotations.json", "images": "images", "val": None,
                 "val_last": 3, "limit": 8},
        "model": {"id": f"torchvision:{name}", "options": options, **weights},
    }, "test")
    prepared = prepare(recipe, data_root=shared_data)
    path = folder / f"{name}.pt"
    save_checkpoint(path, {"model_id": f"torchvision:{name}", "task": task, "class_names": prepared.info.class_names,
                           "preprocessing": asdict(prepared.built.preprocessing), "recipe": recipe_to_dict(recipe),
                           "weights": prepared.built.weights.as_dict(), "model": prepared.built.model.state_dict()})
    return path


def image(shared_data: Path, name: str) -> torch.Tensor:
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    return F.to_dtype(F.pil_to_tensor(Image.open(shared_data / "pennfudan" / "images" / name).convert("RGB")), torch.float32, scale=True)


def assert_same_detections(ref: dict, out: dict, masks: bool = False) -> None:
    """Same detections in the same order: classes identical, boxes IoU >= 0.99 (degenerate
    boxes, which have no IoU, within 0.05 px), scores close."""
    from torchvision.ops import box_iou

    assert len(ref["scores"]) == len(out["scores"]) > 0
    assert torch.equal(ref["labels"], out["labels"]) and out["labels"].dtype == torch.int64
    assert torch.allclose(ref["scores"], out["scores"], atol=1e-3)
    iou = box_iou(ref["boxes"], out["boxes"]).diagonal()
    close = (ref["boxes"] - out["boxes"]).abs().amax(1) < 0.05
    assert bool(((iou >= 0.99) | (iou.isnan() & close)).all()), (iou, ref["boxes"], out["boxes"])
    if masks:
        agree = ((ref["masks"] >= 0.5) == (out["masks"] >= 0.5)).float().mean()
        assert out["masks"].shape == ref["masks"].shape and float(agree) >= 0.99


@pytest.fixture(scope="module")
def squeeze_ckpt(shared_data, tmp_path_factory) -> Path:
    return checkpoint(shared_data, tmp_path_factory.mktemp("fasterrcnn"), "fasterrcnn", "detection", SQUEEZE)


# --------------------------------------------------------------------------- the graph view


@pytest.mark.parametrize(("min_size", "max_size"), [(64, 96), (320, 512)])
def test_graph_resize_reproduces_pytorch_sizes_where_float32_rounds_down(min_size, max_size):
    """torchvision's traced resize computes sizes in float32 (a 525x682 image became 319x415
    in the graph, 320x415 in PyTorch); the graph's integer resize gives PyTorch's sizes and
    pixels, including where PyTorch's own double arithmetic rounds a side down."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    from visiontl_torchvision.detection_graph import GraphTransform

    eager = GeneralizedRCNNTransform(min_size, max_size, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()
    graph = GraphTransform(eager).eval()
    sizes = [(525, 682), (49, 70), (70, 49), (98, 200), (303, 400), (694, 370), (569, 344), (64, 96), (50, 50), (31, 400)]
    for h, w in sizes:
        x = torch.rand(3, h, w)
        a, _ = eager([x])
        b, _ = graph([x])
        assert a.image_sizes == b.image_sizes, (h, w)
        assert torch.equal(a.tensors, b.tensors), (h, w)


def test_the_graph_view_is_the_model_in_pytorch(shared_data):
    """DetectorGraph computes exactly what the wrapped detector computes (SSD included)."""
    from visiontl_torchvision.detection_graph import DetectorGraph

    for name, options in (("fasterrcnn", SQUEEZE), ("ssdlite320_mobilenet_v3_large", {"detections_per_img": 20, "score_thresh": 0.0})):
        model = build(name, "detection", options)
        view = DetectorGraph(model).eval()
        x = image(shared_data, PICKS[1])
        with torch.no_grad():
            ref = model([x])[0]
            out = dict(zip(view.names, view(x[None]), strict=True))
        assert all(torch.equal(ref[k], out[k]) for k in view.names)


def test_the_graph_view_undoes_what_an_autocast_forward_leaves_in_the_model():
    """A bf16 autocast forward (a benchmark's torch bf16 row) casts torchvision's cell
    anchors to bf16 and leaves them so: the graph rebuilds them in float32."""
    from visiontl_torchvision.detection_graph import DetectorGraph

    model = build("fasterrcnn", "detection", SQUEEZE)
    generator = model.detector.rpn.anchor_generator
    exact = [a.clone() for a in generator.cell_anchors]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model([torch.rand(3, 64, 80)])
    assert generator.cell_anchors[0].dtype == torch.bfloat16
    anchors = DetectorGraph(model).model.detector.rpn.anchor_generator.cell_anchors
    assert all(a.dtype == torch.float32 and torch.equal(a, b) for a, b in zip(anchors, exact, strict=True))


# --------------------------------------------------------------------------- ONNX fp32


def test_fasterrcnn_over_squeezenet_onnx_fp32_is_verified_like_for_like(squeeze_ckpt, shared_data, tmp_path):
    """The recipe's detector (Faster R-CNN over ImageNet SqueezeNet): one ONNX graph, NMS
    inside, verified on PennFudan against PyTorch run one image at a time."""
    from visiontl.api import load_trained
    from visiontl.export.pipeline import export
    from visiontl.export.runtime import load_runtime

    report = export(squeeze_ckpt, "onnx", "fp32", out=tmp_path, data_root=shared_data, threads=1)
    ver, manifest = report.manifest.verification, report.manifest
    assert report.passed and manifest.exporter == "visiontl" and report.files[0].suffix == ".onnx"
    assert ver["images"] == 3 and ver["compared"] >= 3 and ver["agreement"] == 1.0
    assert ver["matched_iou"]["min"] >= 0.99 and ver["max_abs_diff"] < 0.05
    assert ver["primary_metric"] == "map" and {"map", "map50"} <= set(ver["deltas"])
    assert all(abs(d) < 1e-6 for d in ver["deltas"].values())
    assert "fp32 must reproduce PyTorch" in ver["rule"] and ver["tolerance"] == 0.01
    assert manifest.layout.kind == "detections" and manifest.layout.names == ("boxes", "scores", "labels")
    assert manifest.input["shape"] == [1, 3, None, None] and manifest.input["normalised"] is False
    assert manifest.extras["postprocessing"]["detections_per_img"] == 20 and "NMS" in manifest.extras["postprocessing"]["in_graph"]
    # the file on its own, on images of other sizes (one where a float32 resize rounds down)
    model = load_trained(squeeze_ckpt).model.eval()
    runtime = load_runtime(report.manifest_path, threads=1)
    images = [image(shared_data, PICKS[1]), image(shared_data, PICKS[0])[:, :49, :70]]
    with torch.no_grad():
        refs = [model([x])[0] for x in images]
    outs = runtime(images)
    for ref, out in zip(refs, outs, strict=True):
        assert_same_detections(ref, out)


def test_maskrcnn_onnx_fp32_masks_agree_with_pytorch(shared_data, tmp_path):
    from visiontl.export.pipeline import export

    ckpt = checkpoint(shared_data, tmp_path, "maskrcnn", "instance_segmentation", SQUEEZE)
    report = export(ckpt, "onnx", "fp32", out=tmp_path, data_root=shared_data, threads=1)
    ver = report.manifest.verification
    assert report.passed and ver["agreement"] == 1.0 and ver["matched_iou"]["min"] >= 0.99
    assert ver["mask_pixel_agreement"] >= 0.99
    assert {"mask_map", "mask_map50"} <= set(ver["pytorch_fp32"]) and abs(ver["deltas"]["mask_map"]) < 1e-6
    assert report.manifest.layout.names[-1] == "masks" and "mask pasting" in report.manifest.extras["postprocessing"]["in_graph"]


def build(name: str, task: str, options: dict, num_classes: int = 2):
    built = plugin.visiontl_build(BuildRequest(parse_model_id(f"torchvision:{name}"), task, num_classes, options=options))
    assert built is not None
    return built.model.eval()


def untied(model, images: list[torch.Tensor]):
    """An untrained one-stage detector scores every anchor alike (ties that any two NMS
    implementations may break differently): calibrate its BatchNorm on real images and
    perturb its heads so that its scores differ."""
    torch.manual_seed(0)
    detector = model.detector
    norms = [m for m in detector.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        if norms:
            detector.train()
            batch, _ = detector.transform(images)
            features = detector.backbone(batch.tensors)
            detector.head(list(features.values()) if isinstance(features, dict) else [features])
        for m in detector.head.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0.0, 0.02 if norms else 0.01)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("retinanet_resnet50_fpn", ONE_STAGE),
        ("fcos_resnet50_fpn", ONE_STAGE),
        ("ssdlite320_mobilenet_v3_large", {"topk_candidates": 64, "detections_per_img": 20, "score_thresh": 0.0, "frozen_bn": False}),
    ],
    ids=["retinanet", "fcos", "ssdlite"],
)
def test_one_stage_detectors_export_to_onnx_like_pytorch(name, options, shared_data, tmp_path):
    from visiontl.contracts import Preprocessing
    from visiontl.export.contracts import ExportRequest
    from visiontl.export.pipeline import produce
    from visiontl.plugin_manager import get_plugins

    images = [image(shared_data, p) for p in PICKS]
    model = untied(build(name, "detection", options), images)
    size = 320 if "ssd" in name else 64
    request = ExportRequest(format="onnx", precision="fp32", main_file=tmp_path / f"{name}.onnx", model_id=f"torchvision:{name}",
                            task="detection", class_names=["a", "b"], preprocessing=Preprocessing(input_size=(size, size)))
    artifact = produce(model, request, get_plugins())
    runtime = artifact.load(1)
    with torch.no_grad():
        refs = [model([x])[0] for x in images]
    for ref, out in zip(refs, runtime(images), strict=True):
        assert_same_detections(ref, out)


# --------------------------------------------------------------------------- OpenVINO, int8


def test_openvino_fp32_bf16_int8_and_onnx_int8_are_verified(squeeze_ckpt, shared_data, tmp_path):
    """fp32 equals PyTorch; bf16 and int8 report their cost per metric; int8 is calibrated
    on the run's training images and leaves the post-processing in float (run in f32)."""
    from visiontl.export.pipeline import export

    fp32 = export(squeeze_ckpt, "openvino", "fp32", out=tmp_path, data_root=shared_data, threads=1)
    assert fp32.passed and fp32.manifest.verification["agreement"] == 1.0 and fp32.manifest.runtime["inference_precision"] == "f32"
    # force: these check the mechanism on an untrained model, whose reduced precisions may
    # cost more than the bound (and would then be refused)
    bf16 = export(squeeze_ckpt, "openvino", "bf16", out=tmp_path, data_root=shared_data, threads=1, force=True)
    assert bf16.manifest.runtime["inference_precision"] == "bf16" and "map50" in bf16.manifest.verification["deltas"]
    assert "bf16" in bf16.manifest.verification["rule"]
    int8 = export(squeeze_ckpt, "openvino", "int8", out=tmp_path, data_root=shared_data, threads=1, force=True)
    cal = int8.manifest.calibration
    assert cal["images"] == 8 and "NNCF" in cal["method"] and cal["float_nodes"]
    assert int8.manifest.runtime["inference_precision"] == "f32" and int8.size_bytes < fp32.size_bytes
    assert int8.manifest.verification["images"] == 3 and "map" in int8.manifest.verification["deltas"]
    # --calib: a folder of images, taken as they are (detectors resize and normalise inside)
    calib = tmp_path / "calib"
    calib.mkdir()
    for name in PICKS:
        (calib / name).symlink_to(shared_data / "pennfudan" / "images" / name)
    onnx_int8 = export(squeeze_ckpt, "onnx", "int8", calib=calib, out=tmp_path, data_root=shared_data, threads=1, force=True)
    cal = onnx_int8.manifest.calibration
    assert cal["images"] == 2 and cal["transform"].startswith("none") and cal["source"] == str(calib)
    assert cal["op_types"] == ["Conv", "Gemm", "MatMul"] and any("bbox_pred" in n for n in cal["float_nodes"])
    assert onnx_int8.size_bytes < fp32.size_bytes / 2


# --------------------------------------------------------------------------- refusals, failures


def test_refused_pairs_say_why_and_what_instead(squeeze_ckpt):
    from visiontl.cli import cli

    result = CliRunner().invoke(cli, ["export", str(squeeze_ckpt), "--format", "torchscript"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "TorchScript export of the torchvision detector" in result.output and "--format onnx" in result.output
    result = CliRunner().invoke(cli, ["export", str(squeeze_ckpt), "--format", "onnx", "--precision", "bf16"])
    assert result.exit_code == 1 and "not 'bf16'" in result.output and "--format openvino" in result.output


def test_an_fp32_export_that_differs_from_pytorch_fails_loudly(squeeze_ckpt, shared_data, tmp_path):
    """fp32 must reproduce PyTorch within the tolerance *either way*; the export raises after
    recording the failed verification (here forced by an impossible negative tolerance)."""
    import json

    from visiontl.export.pipeline import _problems, export
    from visiontl.export.verify import Comparison

    up = Comparison(primary_metric="map", reference={"map": 0.50, "map50": 0.80}, exported={"map": 0.50, "map50": 0.83})
    assert _problems(up, 0.01, "fp32") == ["map50 differs from PyTorch fp32 by +3.00 points (0.8000 -> 0.8300), beyond the fp32 tolerance of 1.00"]
    assert _problems(up, 0.01, "int8") == []  # a reduced precision may only not drop
    with pytest.raises(ExportError, match="verification: FAILED: the fp32 onnx export") as info:
        export(squeeze_ckpt, "onnx", "fp32", out=tmp_path, data_root=shared_data, threads=1, tolerance=-0.5)
    assert "fp32 tolerance" in str(info.value)
    manifest = json.loads(next(tmp_path.glob("*.export.json")).read_text())
    assert manifest["verification"]["passed"] is False and manifest["verification"]["problems"]
