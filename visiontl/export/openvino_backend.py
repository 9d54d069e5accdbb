"""OpenVINO: convert from PyTorch, quantise to int8 with NNCF, run on the CPU plugin.

* fp32 and bf16 share one IR with fp32 weights; the precision is the CPU plugin's
  ``INFERENCE_PRECISION_HINT``, stored in the manifest. On CPUs with AMX or AVX512-BF16 the
  plugin *defaults* to bf16, so an "fp32" OpenVINO model is compiled with the hint ``f32``
  explicitly: otherwise it would silently run in bf16.
* int8 is NNCF post-training quantisation (``nncf.quantize``) calibrated on the user's
  images; operations NNCF leaves unquantised run at the plugin's default precision, which is
  recorded (``inference_precision``) with every measurement.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from visiontl.export.errors import ExportError
from visiontl.export.graph import OutputLayout
from visiontl.export.runtime import RuntimeModule

#: ``--precision`` -> the CPU plugin's inference precision hint (``None``: the plugin's default).
PRECISION_HINTS: dict[str, str | None] = {"fp32": "f32", "bf16": "bf16", "int8": None}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """NNCF and the converter warn about things users cannot act on, and NNCF draws progress
    bars on stdout (which would corrupt ``--json`` output): keep errors only."""
    loggers = [logging.getLogger(n) for n in ("nncf", "openvino", "torch.utils.cpp_extension")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def convert(view: nn.Module, example: torch.Tensor, *, dynamic_size: bool | None, model_id: str,
            input_shape: list[int | None] | None = None) -> Any:
    """``view`` as an OpenVINO model (dynamic batch; dynamic height/width when asked, or the
    dynamic axes of ``input_shape``: its ``None`` entries)."""
    import openvino as ov

    if input_shape is not None:
        shape = [-1 if size is None else int(size) for size in input_shape]
    else:
        shape = [-1, 3, -1, -1] if dynamic_size else [-1, 3, int(example.shape[2]), int(example.shape[3])]
    try:
        with _quiet(), torch.no_grad():
            return ov.convert_model(view, example_input=example, input=[shape])
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"OpenVINO conversion of '{model_id}' failed: {type(exc).__name__}: {_first_line(exc)}",
            fix="try --format onnx or torchscript; run with --debug for the traceback",
        ) from exc


def quantize(ov_model: Any, calibration: Sequence[np.ndarray], model_id: str,
             float_nodes: Sequence[str] = ()) -> tuple[Any, dict[str, Any]]:
    """NNCF int8 post-training quantisation of ``ov_model`` calibrated on ``calibration``.

    Args:
        float_nodes: regular expressions (``re.match``) of node names NNCF leaves in float
            (detection graphs: the box decoding, NMS and mask pasting around the network,
            and the heads' output layers).
    """
    with _quiet():
        import nncf

    kwargs: dict[str, Any] = {}
    if float_nodes:
        kwargs["ignored_scope"] = nncf.IgnoredScope(patterns=list(float_nodes), validate=False)
        # A model straight from the converter, with If/Loop bodies (detection graphs), makes
        # NNCF fail to find ignored nodes ("Could not find a node ... in NNCFGraph"); the
        # same model written and read back quantises.
        ov_model = _reloaded(ov_model)
    try:
        with _quiet():
            quantized = nncf.quantize(ov_model, nncf.Dataset(list(calibration)), subset_size=len(calibration), **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"NNCF int8 quantisation of '{model_id}' failed: {type(exc).__name__}: {_first_line(exc)}",
            fix="export fp32 or bf16, or use --format onnx --precision int8",
        ) from exc
    return quantized, {"method": f"NNCF {nncf.__version__} post-training quantisation (default preset)",
                       "calibration_batches": len(calibration), **({"float_nodes": list(float_nodes)} if float_nodes else {})}


def _reloaded(ov_model: Any) -> Any:
    """``ov_model`` written to a temporary IR and read back (weights held in memory)."""
    import tempfile

    import openvino as ov

    with tempfile.TemporaryDirectory(prefix="visiontl-ov-") as tmp:
        path = Path(tmp) / "model.xml"
        ov.save_model(ov_model, str(path), compress_to_fp16=False)
        weights = np.fromfile(path.with_suffix(".bin"), dtype=np.uint8)
        return ov.Core().read_model(path.read_bytes(), ov.Tensor(weights))


def save(ov_model: Any, path: Path, precision: str) -> list[Path]:
    """Write ``path`` (.xml) and its .bin; fp32 keeps fp32 weights (no fp16 compression)."""
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, str(path), compress_to_fp16=precision == "bf16")
    return [path, path.with_suffix(".bin")]


class OpenVinoModule(RuntimeModule):
    """An OpenVINO IR compiled for the CPU plugin (latency hint, one stream)."""

    def __init__(self, path: Path, precision: str, layout: OutputLayout, threads: int | None = None, hint: str | None = None) -> None:
        super().__init__("openvino", precision, path, layout)
        import openvino as ov

        hint = hint if hint is not None else PRECISION_HINTS.get(precision)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if hint is not None:
            config["INFERENCE_PRECISION_HINT"] = hint
        core = ov.Core()
        try:
            self.compiled = core.compile_model(str(path), "CPU", config)
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"OpenVINO cannot compile '{path}' for the CPU with {config}: {type(exc).__name__}: {_first_line(exc)}",
                              fix="export again, or choose another --precision") from None
        self.request = self.compiled.create_infer_request()
        self.settings = {
            "runtime": f"openvino {ov.get_version()}", "device": "CPU", "threads": threads,
            "inference_precision": _type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT")),
            "performance_hint": "LATENCY", "streams": 1,
        }

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        self.request.infer({0: array})
        return [self.request.get_output_tensor(i).data.copy() for i in range(len(self.compiled.outputs))]


def _type_name(value: Any) -> str:
    """OpenVINO's element type as its short name (``f32``, ``bf16``)."""
    name = getattr(value, "get_type_name", None)
    return str(name()) if callable(name) else str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"
