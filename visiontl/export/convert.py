"""One entry point that writes any generic export: graph, weights, manifest.

:func:`convert` is shared by ``visiontl export`` (which then verifies the result) and by
``visiontl benchmark --formats`` (which times it): the file that is measured is the file that
is shipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from visiontl.contracts import Preprocessing
from visiontl.export.errors import ExportError
from visiontl.export.formats import check_precision, get_format, require
from visiontl.export.graph import exportable
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
    """

    model: nn.Module
    model_id: str
    task: str
    class_names: list[str]
    preprocessing: Preprocessing
    source: str = ""

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
    main_file = Path(main_file)
    main_file.parent.mkdir(parents=True, exist_ok=True)
    runtime: dict[str, Any] = {}
    calib_settings: dict[str, Any] = {}
    files: list[Path]
    if fmt.name == "onnx":
        from visiontl.export.onnx_backend import INPUT_NAME, export_onnx, quantize_onnx

        if precision == "int8":
            float_file = main_file.with_name(main_file.stem + ".fp32.tmp.onnx")
            try:
                export_onnx(view, example, float_file, layout, dynamic_size=item.dynamic_size, model_id=item.model_id)
                calib_settings = quantize_onnx(float_file, main_file, _checked(calibration, item), item.model_id)
            finally:
                float_file.unlink(missing_ok=True)
        else:
            export_onnx(view, example, main_file, layout, dynamic_size=item.dynamic_size, model_id=item.model_id)
        files = [main_file]
        input_name = INPUT_NAME
    elif fmt.name == "openvino":
        from visiontl.export.openvino_backend import PRECISION_HINTS, quantize, save
        from visiontl.export.openvino_backend import convert as ov_convert

        ov_model = ov_convert(view, example, dynamic_size=item.dynamic_size, model_id=item.model_id)
        if precision == "int8":
            ov_model, calib_settings = quantize(ov_model, _checked(calibration, item), item.model_id)
        files = save(ov_model, main_file, precision)
        runtime["inference_precision"] = PRECISION_HINTS[precision]
        input_name = _ov_input_name(ov_model)
    else:
        from visiontl.export.torchscript_backend import export_torchscript

        export_torchscript(view, example, main_file, precision, item.model_id)
        files = [main_file]
        input_name = "x"  # the traced forward's argument
    shape: list[int | None] = [None, 3, None, None] if item.dynamic_size else [None, 3, h, w]
    manifest = ExportManifest(
        format=fmt.name,
        precision=precision,
        files=[f.name for f in files],
        model_id=item.model_id,
        task=item.task,
        class_names=list(item.class_names),
        preprocessing=asdict(item.preprocessing),
        input={"name": input_name, "shape": shape, "dtype": "float32", "normalised": True},
        layout=layout,
        runtime=runtime,
        source=item.source,
        calibration={**(calibration_info or {}), **calib_settings} if precision == "int8" else {},
        versions=versions(),
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
