"""Exporting torchvision detectors (the ``visiontl_export`` hook): the whole detector, per image.

torchvision writes its detectors to trace (``torchvision._is_tracing()`` branches, NMS and
RoIAlign as ONNX ``NonMaxSuppression`` / ``RoiAlign``, a mask-pasting loop), so the whole
eval forward -- normalisation and resizing, backbone, RPN, RoI heads, box decoding, score
filtering, NMS, mask pasting, and the wrapper's 0-based labels -- goes into one graph that
takes one image and returns that image's detections (:mod:`visiontl.export.detection`).
No post-processing is left in Python, so the export needs neither torch nor torchvision to
run, and the runtime decides and scores exactly what PyTorch does.

* The traced view (:mod:`detection_graph`) is the detector with two repairs that change
  nothing in PyTorch: an integer resize (torchvision's traced one rounds some sizes a pixel
  short) and, for SSD, constant default boxes (torchvision's generator does not trace).
* Verification runs PyTorch one image at a time too (the core does so for per-image graphs):
  in a batch torchvision pads every image to the largest, which changes its detections.
* int8 quantises the network only (:data:`FLOAT_NODES`): ONNX Runtime quantises its
  ``Conv``/``Gemm``/``MatMul``, NNCF its operations, both calibrated on the user's images;
  resizing, box decoding, NMS, RoIAlign, mask pasting and the heads' output layers stay in
  float (for OpenVINO the first convolution too), and OpenVINO runs them in f32.
* TorchScript is refused for detectors, saying so (a traced detector would still need torch
  and torchvision's compiled operators at run time; ONNX and OpenVINO need neither).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from visiontl.export.errors import ExportError

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.export.contracts import ExportArtifact, ExportRequest

#: Formats and precisions torchvision detectors export to.
PRECISIONS: dict[str, tuple[str, ...]] = {"onnx": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8")}
#: ONNX op types int8 quantises: the network's; the post-processing stays in float.
ONNX_INT8_OPS = ("Conv", "Gemm", "MatMul")
#: Module paths of the network (either backend's node naming: ``/model/detector/backbone/...``
#: in ONNX, ``__module.model.detector.backbone...`` in OpenVINO).
_NETWORK = (r"backbone|rpn[./]head[./]|box_head|box_predictor|mask_head|mask_predictor|"
            r"head[./](classification_head|regression_head)")
#: Node names int8 leaves in float: everything outside the network (resizing, anchors, box
#: decoding, NMS, RoIAlign, mask pasting), and the heads' output layers, whose rounding
#: moves boxes (measured on PennFudan: ONNX int8 lost 1.0 AP50 point with them quantised,
#: 0.3 without).
FLOAT_NODES = (rf"^(?!.*({_NETWORK}))", r".*(cls_logits|bbox_pred|bbox_reg|bbox_ctrness|cls_score|mask_fcn_logits)")
#: Post-processing settings recorded in the manifest (those the detector has).
_SETTINGS = ("score_thresh", "nms_thresh", "detections_per_img", "topk_candidates")


def check_request(request: ExportRequest) -> None:
    """Refuse formats and precisions the whole-detector export cannot give, saying why and
    what to use instead."""
    if request.format == "torchscript":
        raise ExportError(
            f"TorchScript export of the torchvision detector '{request.model_id}' is not offered: a traced detector would "
            "still need torch and torchvision's compiled operators (NMS, RoIAlign) to run, and is not verified here.",
            fix="use --format onnx (fp32, int8) or --format openvino (fp32, bf16, int8)",
        )
    precisions = PRECISIONS.get(request.format)
    if precisions is None:
        raise ExportError(f"torchvision detectors export to {', '.join(PRECISIONS)}, not '{request.format}'.",
                          fix="use --format onnx or --format openvino")
    if request.precision not in precisions:
        others = [f for f, p in PRECISIONS.items() if request.precision in p]
        raise ExportError(
            f"The {request.format} export of the torchvision detector '{request.model_id}' supports {', '.join(precisions)}, "
            f"not {request.precision}.",
            fix=f"use --precision {' or '.join(precisions)}" + (f", or --format {' / '.join(others)} for {request.precision}" if others else ""),
        )


def postprocessing(detector: Any) -> dict[str, Any]:
    """The post-processing settings baked into the graph (for the manifest)."""
    source = getattr(detector, "roi_heads", detector)
    settings: dict[str, Any] = {"in_graph": "normalise and resize, box decoding, score filter, NMS"
                                + (", mask pasting" if getattr(source, "mask_predictor", None) is not None else "")}
    for name in _SETTINGS:
        value = getattr(source, name, None)
        if isinstance(value, (int, float)):
            settings[name] = value
    transform = detector.transform
    settings["fixed_size"] = list(transform.fixed_size) if getattr(transform, "fixed_size", None) else None
    settings["min_size"] = list(transform.min_size) if isinstance(transform.min_size, (tuple, list)) else transform.min_size
    settings["max_size"] = transform.max_size
    return settings


def export(model: nn.Module, request: ExportRequest) -> ExportArtifact:
    """Export a torchvision detector as ``request`` asks (see the module docstring).

    Raises:
        ExportError: a format or precision detectors do not take (with the alternative), a
            model that does not trace, a failed quantisation.
    """
    from visiontl.export.contracts import ExportArtifact
    from visiontl.export.convert import Graph, ModelToExport, export_graph
    from visiontl.export.detection import detection_layout, output_axes
    from visiontl.export.manifest import manifest_path_for
    from visiontl.export.runtime import load_runtime
    from visiontl_torchvision.detection_graph import DetectorGraph

    check_request(request)
    model = model.eval().to("cpu").float()
    view = DetectorGraph(model).eval()  # type: ignore[arg-type]
    layout = detection_layout(model.masks)  # type: ignore[arg-type]
    h, w = request.preprocessing.input_size
    example = _example(h, w)
    graph = Graph(
        view, layout, example, [1, 3, None, None], normalised=False, output_axes=output_axes(layout),
        quantize_ops=ONNX_INT8_OPS, float_nodes=(*FLOAT_NODES, *first_convolution(view)),
        # what int8 leaves in float runs in f32: the CPU plugin's bf16 RoIAlign is 20x slower
        int8_float_precision="f32",
        extras={"graph": "one image per call: [1, 3, H, W] RGB in 0..1 (not normalised); the detector resizes and "
                         "normalises inside", "postprocessing": postprocessing(model.detector)},  # type: ignore[arg-type]
    )
    item = ModelToExport(model, request.model_id, request.task, list(request.class_names), request.preprocessing, request.source)
    calibration = request.calibration if request.precision == "int8" else None
    manifest = export_graph(item, graph, request.format, request.precision, Path(request.main_file), calibration,
                            request.calibration_info)
    path = manifest_path_for(Path(request.main_file))
    return ExportArtifact(manifest, path, lambda threads: load_runtime(path, threads))


def first_convolution(view: nn.Module) -> list[str]:
    """OpenVINO node-name pattern of the view's first convolution, which NNCF leaves in float
    (measured on PennFudan Faster R-CNN over SqueezeNet, OpenVINO int8: AP50 -0.94 points
    with it quantised, -0.59 without; ONNX Runtime int8 did better with it quantised, and
    ONNX node names do not follow module paths, so the pattern is OpenVINO's only)."""
    for name, module in view.named_modules():
        if isinstance(module, nn.Conv2d):
            return [re.escape(f"__module.{name}/")]
    return []


def _example(h: int, w: int) -> torch.Tensor:
    """A traced example: a smooth random image (the size only shapes the trace's constants,
    every axis that can vary is declared dynamic)."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, max(h // 16, 2), max(w // 16, 2), generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
