"""ONNX: export with a dynamic batch axis, static int8 quantisation, and ONNX Runtime.

* :func:`export_onnx` uses torch's TorchScript-based exporter (``dynamo=False``): it needs no
  extra package and handles the CNNs and transformers the plugins build; the batch axis (and
  for dense tasks height and width) is dynamic.
* :func:`quantize_onnx` is ONNX Runtime's static post-training quantisation (QDQ format,
  per-channel int8 weights, uint8 activations) calibrated on the user's images. It is not
  always faster than fp32 on a CPU: measure it (``visiontl benchmark --formats onnx,onnx-int8``).
* :class:`OnnxRuntimeModule` runs a file on ONNX Runtime's CPU provider with a fixed number of
  intra-op threads, so timings compare with PyTorch at the same thread count.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from visiontl.export.errors import ExportError
from visiontl.export.graph import OutputLayout
from visiontl.export.runtime import RuntimeModule

INPUT_NAME = "images"
OPSET = 17


def export_onnx(view: nn.Module, example: torch.Tensor, path: Path, layout: OutputLayout, *, dynamic_size: bool | None, model_id: str,
                input_shape: list[int | None] | None = None, output_axes: dict[str, dict[int, str]] | None = None) -> None:
    """Trace ``view`` (tensor in, tuple of tensors out) to ``path``.

    Args:
        dynamic_size: height and width are dynamic (the batch axis always is), unless
            ``input_shape`` says which axes are (``None`` entries).
        output_axes: dynamic axes of the outputs (default: the batch axis of each).

    Raises:
        ExportError: the exporter failed (an operator without an ONNX equivalent ...).
    """
    names = ("batch", "channels", "height", "width")
    if input_shape is not None:
        axes = {i: names[i] for i, size in enumerate(input_shape) if size is None}
    else:
        axes = {0: "batch", **({2: "height", 3: "width"} if dynamic_size else {})}
    dynamic_axes: dict[str, dict[int, str]] = {INPUT_NAME: axes}
    for name in layout.names:
        dynamic_axes[name] = dict((output_axes or {}).get(name, {0: "batch"}))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings
            torch.onnx.export(
                view, (example,), str(path), dynamo=False, input_names=[INPUT_NAME], output_names=list(layout.names),
                dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True,
            )
    except Exception as exc:  # noqa: BLE001 - any exporter failure becomes one clear message
        raise ExportError(
            f"ONNX export of '{model_id}' failed: {type(exc).__name__}: {_first_line(exc)}",
            fix="try --format openvino or torchscript, which trace differently; run with --debug for the traceback",
        ) from exc


def quantize_onnx(source: Path, target: Path, calibration: Sequence[np.ndarray], model_id: str,
                  op_types: Sequence[str] | None = None, float_nodes: Sequence[str] = (),
                  input_name: str = INPUT_NAME) -> dict[str, Any]:
    """Static int8 quantisation of ``source`` into ``target``, calibrated on ``calibration``
    (float32 NCHW batches, already preprocessed like the model's input).

    Args:
        op_types: the op types to quantise (``None``: ONNX Runtime's default set). Detection
            graphs pass ``Conv``/``Gemm``/``MatMul`` so that box decoding, NMS and mask
            pasting stay in float.
        float_nodes: regular expressions (``re.match``) of node names left in float (e.g. the
            output layers of detection heads, whose int8 rounding moves boxes).
        input_name: the graph's input (graphs exported by another library name it their way).

    Returns:
        The settings used (for the manifest).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {input_name: item}

    prepared = target.with_name(target.stem + ".prep.onnx")
    settings = {"method": "onnxruntime static QDQ", "weights": "int8 per-channel", "activations": "uint8 (MinMax calibration)",
                "calibration_batches": len(calibration), **({"op_types": list(op_types)} if op_types else {})}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            excluded = _matching_nodes(prepared, float_nodes)
            if excluded:
                settings["float_nodes"] = excluded
            quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                            op_types_to_quantize=list(op_types) if op_types else None, nodes_to_exclude=excluded)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"ONNX Runtime int8 quantisation of '{model_id}' failed: {type(exc).__name__}: {_first_line(exc)}",
            fix="use --format openvino --precision int8 (NNCF), or export fp32",
        ) from exc
    finally:
        prepared.unlink(missing_ok=True)
    return settings


def _matching_nodes(path: Path, patterns: Sequence[str]) -> list[str]:
    """Names of the nodes of the ONNX file ``path`` that match one of ``patterns``."""
    if not patterns:
        return []
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    compiled = [re.compile(p) for p in patterns]
    return [n.name for n in model.graph.node if any(c.match(n.name) for c in compiled)]


def session_options(threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3
    return options


class OnnxRuntimeModule(RuntimeModule):
    """An ONNX file on ONNX Runtime's CPU execution provider."""

    def __init__(self, path: Path, precision: str, layout: OutputLayout, threads: int | None = None) -> None:
        super().__init__("onnx", precision, path, layout)
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"ONNX Runtime cannot load '{path}': {type(exc).__name__}: {_first_line(exc)}",
                              fix="export the model again with: visiontl export") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.settings = {"runtime": f"onnxruntime {ort.__version__}", "provider": "CPUExecutionProvider",
                         "intra_op_threads": threads, "inter_op_threads": 1}

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(self.output_names, {self.input_name: array}))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"
