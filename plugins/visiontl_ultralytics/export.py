"""Exporting YOLO models with Ultralytics' own exporter (the ``visiontl_export`` hook).

Ultralytics exports the *network* (letterboxed image in, raw predictions out) and keeps box
decoding, NMS and mask assembly in Python, which is what its exporter is built for; visiontl's
generic exporter cannot trace :class:`~visiontl_ultralytics.model.YoloModel`'s eval forward
(per-image dicts after NMS). So:

* the network (a copy) goes through ``ultralytics.engine.exporter.Exporter`` with a dynamic
  batch axis (ONNX, OpenVINO) at the model's letterbox size, no NMS in the graph, fp32;
* the export runs behind the same :class:`YoloModel` wrapper (:class:`RuntimeNet` stands in
  for the network), so letterboxing, NMS, and the task's evaluator are the ones PyTorch
  uses: verification compares detections and mAP like for like.

Supported: ``onnx`` fp32 and int8 (ONNX Runtime static QDQ on the convolutions, the head's
output layers left in float), ``openvino`` fp32, bf16 (the CPU plugin's inference precision)
and int8 (NNCF), ``torchscript`` fp32. int8 is calibrated on visiontl's calibration images
letterboxed as at inference, not through Ultralytics' dataset loader (which writes caches
beside the labels).
"""

from __future__ import annotations

import copy
import logging
import types
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from visiontl.errors import VisiontlError

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.export.contracts import ExportArtifact, ExportRequest

#: visiontl format -> (Ultralytics format, precisions offered).
FORMATS = {"onnx": ("onnx", ("fp32", "int8")), "openvino": ("openvino", ("fp32", "bf16", "int8")), "torchscript": ("torchscript", ("fp32",))}

#: Nodes of Ultralytics' ONNX graph left in float by the int8 quantiser: the head's output
#: convolutions (box distributions, class scores, mask coefficients) and the DFL projection,
#: whose int8 rounding moves boxes and flips scores, and the first convolution (raw pixels).
ONNX_FLOAT_NODES = (r".*/dfl/.*", r".*/cv[234]\.\d+/cv[234]\.\d+\.2/.*", r"/model\.0/conv/.*")


class RuntimeNet(nn.Module):
    """Stands in for the Ultralytics network inside :class:`YoloModel`: runs the export and
    returns its outputs in the network's eval form (``(preds, {})``, or ``((preds, proto), {})``
    for segmentation), with the ``stride`` and head class count the wrapper reads."""

    def __init__(self, runtime: nn.Module, stride: torch.Tensor, num_classes: int, segment: bool) -> None:
        super().__init__()
        self.runtime = runtime
        self.register_buffer("stride", stride.detach().clone().float())
        self.model = [types.SimpleNamespace(nc=int(num_classes))]
        self.segment = segment
        # YoloModel reads the device and dtype from the network's first parameter
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.settings: dict[str, Any] = dict(getattr(runtime, "settings", {}))

    def forward(self, x: torch.Tensor) -> Any:
        out = self.runtime(x)
        if self.segment:
            return ((out[0], out[1]), {})
        return (out[0] if isinstance(out, (tuple, list)) else out, {})


def _export_error(message: str, fix: str) -> VisiontlError:
    from visiontl.export.errors import ExportError

    return ExportError(message, fix=fix)


def export(model: nn.Module, request: ExportRequest) -> ExportArtifact:
    """Export ``model`` (a :class:`YoloModel`) as ``request`` asks, through Ultralytics."""
    from visiontl.export.contracts import ExportArtifact
    from visiontl.export.convert import versions
    from visiontl.export.graph import OutputLayout
    from visiontl.export.manifest import ExportManifest, manifest_path_for, write_manifest
    from visiontl_ultralytics import offline

    if request.format not in FORMATS:
        raise _export_error(f"Ultralytics models export to {', '.join(FORMATS)} here, not '{request.format}'.",
                            fix="use --format onnx, openvino or torchscript")
    ultra_format, precisions = FORMATS[request.format]
    if request.precision not in precisions:
        raise _export_error(
            f"The Ultralytics {request.format} export of '{request.model_id}' supports {', '.join(precisions)}, not {request.precision}"
            + ".",
            fix=f"use --precision {' or '.join(precisions)}" + (" (int8: --format openvino)" if request.precision == "int8" else ""),
        )
    segment = bool(getattr(model, "segment", False))
    imgsz = int(getattr(model, "imgsz", 640))
    main_file = Path(request.main_file)
    main_file.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model.net).float().eval().cpu()
    net.task = "segment" if segment else "detect"  # what YOLO() sets when it loads a checkpoint
    net.pt_path = str(main_file.with_suffix(".pt"))  # the exporter names its output after this
    offline.import_ultralytics()
    from ultralytics.engine.exporter import Exporter

    dynamic = request.format in ("onnx", "openvino")
    # Ultralytics refuses arguments a format does not list, even when set to a neutral value.
    overrides: dict[str, Any] = {"format": ultra_format, "imgsz": imgsz, "batch": 1, "device": "cpu", "nms": False}
    if dynamic:
        overrides["dynamic"] = True
    if request.format == "onnx":
        overrides["simplify"] = False  # onnxslim is optional; the graph is verified either way
    # The exporter asks every detect head for end-to-end outputs; YOLOv8 has only the
    # one-to-many head, so Ultralytics warns and exports that, which is what the wrapper's NMS
    # expects: the notice says nothing the user can act on.
    notice = _DropMessage("no one-to-one head")
    ultra_logger = logging.getLogger("ultralytics")
    ultra_logger.addFilter(notice)
    try:
        with offline.ultralytics_logging(verbose=False), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit / exporter deprecation notices
            produced = Path(Exporter(overrides=overrides)(model=net))
    except Exception as exc:  # noqa: BLE001 - any exporter failure becomes one clear message
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise _export_error(f"Ultralytics' {ultra_format} exporter failed for '{request.model_id}': {type(exc).__name__}: {text}",
                            fix="run with --debug for the traceback; try another --format") from exc
    finally:
        ultra_logger.removeFilter(notice)
    if produced.is_dir():  # OpenVINO: a folder holding <stem>.xml and .bin
        xml = next(iter(sorted(produced.glob("*.xml"))), None)
        if xml is None:
            raise _export_error(f"Ultralytics' OpenVINO export wrote no .xml into '{produced}'.", fix="run with --debug")
        files = [xml, xml.with_suffix(".bin")]
    else:
        files = [produced]
    calibration: dict[str, Any] = {}
    if request.precision == "int8" and request.format == "openvino":
        files, calibration = _quantize_ir(files[0], request, imgsz)
    elif request.precision == "int8":
        files, calibration = _quantize_onnx(files[0], request, imgsz)
    folder = main_file.parent
    layout = OutputLayout("tuple", ("output0", "output1")) if segment else OutputLayout("tensor", ("output0",))
    hint = {"fp32": "f32", "bf16": "bf16"}.get(request.precision) if request.format == "openvino" else None
    manifest = ExportManifest(
        format=request.format, precision=request.precision, files=[str(f.relative_to(folder)) for f in files],
        model_id=request.model_id, task=request.task, class_names=list(request.class_names),
        preprocessing={"input_size": [imgsz, imgsz], "letterbox": True, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
        input={"name": "images", "shape": [None, 3, imgsz, imgsz] if dynamic else [1, 3, imgsz, imgsz], "dtype": "float32",
               "normalised": False, "note": "RGB in 0..1, letterboxed to imgsz with grey (114) padding"},
        layout=layout, runtime={"inference_precision": hint} if hint else {}, exporter="ultralytics", source=request.source,
        calibration=calibration,
        versions={**versions(), "ultralytics": _ultralytics_version()},
        extras={"postprocessing": "NMS and mask assembly in Python (visiontl_ultralytics YoloModel)", "imgsz": imgsz,
                **postprocessing(model)},
    )
    manifest_path = write_manifest(manifest, manifest_path_for(main_file))
    stride, num_classes = model.net.stride, int(model.num_classes)

    def load(threads: int | None) -> nn.Module:
        runtime = _runtime(request.format, files[0], request.precision, layout, threads, hint)
        wrapper = model.with_net(RuntimeNet(runtime, stride, num_classes, segment))
        return wrapper.eval()

    return ExportArtifact(manifest, manifest_path, load)


def postprocessing(model: nn.Module) -> dict[str, Any]:
    """What decodes the raw predictions, with the wrapper's own settings, for runtimes that
    do it without torch (:mod:`visiontl.deploy.yolo`: letterbox, NMS, masks from prototypes,
    step for step as :class:`~visiontl_ultralytics.model.YoloModel`)."""
    import inspect

    from ultralytics.utils.nms import non_max_suppression

    # Ultralytics' NMS constants: its defaults, which YoloModel does not change.
    defaults = {name: p.default for name, p in inspect.signature(non_max_suppression).parameters.items()}
    return {
        "decoder": "yolo", "conf": getattr(model, "conf", None), "iou": getattr(model, "iou", None),
        "max_det": getattr(model, "max_det", None), "num_classes": int(getattr(model, "num_classes", 0)) or None,
        "segment": bool(getattr(model, "segment", False)),
        "max_nms": defaults.get("max_nms", 30000), "max_wh": defaults.get("max_wh", 7680),
        "letterbox": {"pad_value": 114, "centred": True, "antialias_when_shrinking": True},
    }


def _quantize_ir(xml: Path, request: ExportRequest, imgsz: int) -> tuple[list[Path], dict[str, Any]]:
    """NNCF int8 post-training quantisation of the fp32 IR Ultralytics wrote, calibrated on
    the request's real images letterboxed exactly as the wrapper letterboxes at inference.

    Ultralytics' own int8 path calibrates through its dataset loader from a data yaml; going
    through NNCF here uses the same calibration images as every other visiontl int8 export.
    """
    import openvino as ov

    from visiontl.export.openvino_backend import quantize, save

    batches = _letterboxed_calibration(request, imgsz)
    quantized, settings = quantize(ov.Core().read_model(str(xml)), batches, request.model_id)
    written = save(quantized, xml.with_name(xml.stem + ".quantized.xml"), "int8")
    # The fp32 IR was only the quantiser's input: the int8 one takes its names.
    files = [xml, xml.with_suffix(".bin")]
    for source, final in zip(written, files, strict=True):
        source.replace(final)
    return files, {**request.calibration_info, **settings, "letterbox": imgsz}


def _letterboxed_calibration(request: ExportRequest, imgsz: int) -> list[Any]:
    """The request's calibration images letterboxed exactly as the wrapper letterboxes them."""
    import torch

    from visiontl_ultralytics.model import letterbox_batch

    if request.calibration is None:
        raise _export_error(f"The int8 export of '{request.model_id}' needs calibration images.",
                            fix="export a run (its training images are used) or pass --calib DATA")
    batches = []
    for array in request.calibration():
        canvas, _ = letterbox_batch([torch.from_numpy(array)[0]], imgsz)
        batches.append(canvas.float().contiguous().numpy())
    if not batches:
        raise _export_error(f"No calibration images for the int8 export of '{request.model_id}'.", fix="pass --calib DATA")
    return batches


def _quantize_onnx(onnx_file: Path, request: ExportRequest, imgsz: int) -> tuple[list[Path], dict[str, Any]]:
    """ONNX Runtime static int8 (QDQ) of the fp32 graph Ultralytics wrote: convolutions only,
    the head's output layers, the DFL projection and the first convolution left in float,
    calibrated on the request's images letterboxed as at inference."""
    from visiontl.export.onnx_backend import quantize_onnx

    batches = _letterboxed_calibration(request, imgsz)
    quantized = onnx_file.with_name(onnx_file.stem + ".int8.onnx")
    settings = quantize_onnx(onnx_file, quantized, batches, request.model_id, op_types=("Conv",),
                             float_nodes=ONNX_FLOAT_NODES, input_name="images")
    quantized.replace(onnx_file)  # the fp32 graph was only the quantiser's input
    return [onnx_file], {**request.calibration_info, **settings, "letterbox": imgsz}


class _DropMessage(logging.Filter):
    """Drops log records whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _runtime(fmt: str, path: Path, precision: str, layout: Any, threads: int | None, hint: str | None) -> nn.Module:
    if fmt == "onnx":
        from visiontl.export.onnx_backend import OnnxRuntimeModule

        return OnnxRuntimeModule(path, precision, layout, threads)
    if fmt == "openvino":
        from visiontl.export.openvino_backend import OpenVinoModule

        return OpenVinoModule(path, precision, layout, threads, hint)
    from visiontl.export.torchscript_backend import TorchScriptModule

    return TorchScriptModule(path, precision, layout)


def _ultralytics_version() -> str:
    import importlib.metadata as md

    try:
        return md.version("ultralytics")
    except md.PackageNotFoundError:  # pragma: no cover
        return "?"
