"""One entry point that writes any generic export: graph, weights, manifest.

:func:`convert` is shared by ``visiontl export`` (which then verifies the result) and by
``visiontl benchmark --formats`` (which times it): the file that is measured is the file that
is shipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from visiontl.contracts import Preprocessing
from visiontl.export.errors import ExportError
from visiontl.export.formats import check_precision, get_format, require
from visiontl.export.graph import OutputLayout, exportable
from visiontl.export.manifest import ExportManifest, manifest_path_for, write_manifest

#: Calibration images for int8: a function returning float32 NCHW batches (called only for int8).
Calibration = Callable[[], Sequence[np.ndarray]]


@dataclass
class ModelToExport:
    """A PyTorch model and what an export must know about it.

    Attributes:
        model: the module (eval mode, CPU, fp32).
        model_id: its id (``torchvision:squeezenet1_1``).
        task: its task.
        class_names: its classes in output order.
        preprocessing: the input convention (size, mean, std).
        source: the run directory or checkpoint it came from, or ``""``.
        resize: how images are brought to the input size (``data.resize``), for runtimes
            that preprocess without visiontl's transforms.
    """

    model: nn.Module
    model_id: str
    task: str
    class_names: list[str]
    preprocessing: Preprocessing
    source: str = ""
    resize: str = "auto"

    @property
    def dynamic_size(self) -> bool:
        """Dense tasks take images of any size (sliding windows, padded full images);
        classification runs at its fixed input size, which lets runtimes plan better."""
        return self.task != "classification"


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out: dict[str, str] = {"torch": torch.__version__}
    for dist in ("onnx", "onnxruntime", "openvino", "nncf"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out


def default_file_name(model_id: str, fmt: str, precision: str) -> str:
    """``torchvision:squeezenet1_1`` -> ``squeezenet1_1-onnx-fp32.onnx``."""
    name = model_id.split(":", 1)[-1].replace("/", "_") or "model"
    return f"{name}-{fmt}-{precision}{get_format(fmt).suffix}"


@dataclass
class Graph:
    """A traceable view of a model: one tensor in, a tuple of tensors out.

    Attributes:
        view: the module to trace (eval mode, CPU, fp32).
        layout: the form of its outputs (how the runtime hands them back).
        example: an input to trace with.
        input_shape: the input's shape in the manifest; ``None`` marks a dynamic axis.
        normalised: whether the input is normalised with the preprocessing's mean/std
            (classifiers, segmenters) or raw RGB in 0..1 (detectors normalise inside).
        output_axes: ONNX dynamic axes of the outputs (default: the batch axis of each).
        quantize_ops: ONNX op types int8 quantises (``None``: ONNX Runtime's default set).
            Detection graphs keep box decoding, NMS and mask pasting in float.
        float_nodes: regular expressions (``re.match``) of node names int8 leaves in float,
            in either backend's naming (ONNX ``/model/head/conv/Conv``, OpenVINO
            ``__module.model.head.conv/aten::_convolution/Convolution``).
        int8_float_precision: the OpenVINO CPU plugin's precision for what int8 leaves in
            float (``None``: the plugin's default, bf16 on AMX CPUs).
        extras: family facts for the manifest (post-processing parameters ...).
    """

    view: nn.Module
    layout: OutputLayout
    example: torch.Tensor
    input_shape: list[int | None]
    normalised: bool = True
    output_axes: dict[str, dict[int, str]] | None = None
    quantize_ops: tuple[str, ...] | None = None
    float_nodes: tuple[str, ...] = ()
    int8_float_precision: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def convert(item: ModelToExport, fmt_name: str, precision: str, main_file: Path, calibration: Calibration | None = None,
            calibration_info: dict[str, Any] | None = None) -> ExportManifest:
    """Export ``item`` to ``main_file`` in ``fmt_name`` at ``precision``; write its manifest.

    Args:
        calibration: int8 only: returns the calibration batches.
        calibration_info: where the calibration images came from (for the manifest).

    Returns:
        The manifest (also written to ``<stem>.export.json`` beside ``main_file``).

    Raises:
        ExportError: unknown format or precision, missing packages, a model that does not
            trace, a failed quantisation.
    """
    fmt = get_format(fmt_name)
    check_precision(fmt, precision)
    require(fmt, precision)
    if precision == "int8" and calibration is None:
        raise ExportError("int8 export needs calibration images.", fix="pass --calib DATA (a folder of images) or export a run")
    model = item.model.eval().to("cpu").float()
    h, w = item.preprocessing.input_size
    example = torch.rand(1, 3, h, w)
    view, layout = exportable(model, example, item.model_id)
    shape: list[int | None] = [None, 3, None, None] if item.dynamic_size else [None, 3, h, w]
    return export_graph(item, Graph(view, layout, example, shape), fmt_name, precision, main_file, calibration, calibration_info)


def export_graph(item: ModelToExport, graph: Graph, fmt_name: str, precision: str, main_file: Path,
                 calibration: Calibration | None = None, calibration_info: dict[str, Any] | None = None,
                 exporter: str = "visiontl") -> ExportManifest:
    """Write ``graph`` to ``main_file`` in ``fmt_name`` at ``precision``, and its manifest.

    The one writer behind :func:`convert` and the family exporters that trace a view of their
    own (torchvision detectors): every format, int8 calibration and the manifest in one place.

    Raises:
        ExportError: as :func:`convert`.
    """
    fmt = get_format(fmt_name)
    check_precision(fmt, precision)
    require(fmt, precision)
    if precision == "int8" and calibration is None:
        raise ExportError("int8 export needs calibration images.", fix="pass --calib DATA (a folder of images) or export a run")
    view, layout, example = graph.view, graph.layout, graph.example
    main_file = Path(main_file)
    main_file.parent.mkdir(parents=True, exist_ok=True)
    runtime: dict[str, Any] = {}
    calib_settings: dict[str, Any] = {}
    files: list[Path]
    if fmt.name == "onnx":
        from visiontl.export.onnx_backend import INPUT_NAME, export_onnx, quantize_onnx

        def write(path: Path) -> None:
            export_onnx(view, example, path, layout, dynamic_size=None, model_id=item.model_id,
                        input_shape=graph.input_shape, output_axes=graph.output_axes)

        if precision == "int8":
            float_file = main_file.with_name(main_file.stem + ".fp32.tmp.onnx")
            try:
                write(float_file)
                calib_settings = quantize_onnx(float_file, main_file, _checked(calibration, item), item.model_id, graph.quantize_ops,
                                               graph.float_nodes)
            finally:
                float_file.unlink(missing_ok=True)
        else:
            write(main_file)
        files = [main_file]
        input_name = INPUT_NAME
    elif fmt.name == "openvino":
        from visiontl.export.openvino_backend import PRECISION_HINTS, quantize, save
        from visiontl.export.openvino_backend import convert as ov_convert

        ov_model = ov_convert(view, example, dynamic_size=None, model_id=item.model_id, input_shape=graph.input_shape)
        if precision == "int8":
            ov_model, calib_settings = quantize(ov_model, _checked(calibration, item), item.model_id, graph.float_nodes)
        files = save(ov_model, main_file, precision)
        runtime["inference_precision"] = PRECISION_HINTS[precision]
        if precision == "int8" and graph.int8_float_precision is not None:
            runtime["inference_precision"] = graph.int8_float_precision
        input_name = _ov_input_name(ov_model)
    else:
        from visiontl.export.torchscript_backend import export_torchscript

        export_torchscript(view, example, main_file, precision, item.model_id)
        files = [main_file]
        input_name = "x"  # the traced forward's argument
    manifest = ExportManifest(
        format=fmt.name,
        precision=precision,
        files=[f.name for f in files],
        model_id=item.model_id,
        task=item.task,
        class_names=list(item.class_names),
        preprocessing={**asdict(item.preprocessing), "resize": item.resize},
        input={"name": input_name, "shape": list(graph.input_shape), "dtype": "float32", "normalised": graph.normalised},
        layout=layout,
        runtime=runtime,
        exporter=exporter,
        source=item.source,
        calibration={**(calibration_info or {}), **calib_settings} if precision == "int8" else {},
        versions=versions(),
        extras=dict(graph.extras),
    )
    write_manifest(manifest, manifest_path_for(main_file))
    return manifest


def _checked(calibration: Calibration | None, item: ModelToExport) -> Sequence[np.ndarray]:
    batches = list(calibration()) if calibration is not None else []
    if not batches:
        raise ExportError(f"No calibration images for the int8 export of '{item.model_id}'.",
                          fix="pass --calib DATA with readable images")
    return batches


def _ov_input_name(ov_model: Any) -> str:
    try:
        return str(ov_model.inputs[0].get_any_name())
    except Exception:  # noqa: BLE001 - converted models may leave the input unnamed
        return "x"
