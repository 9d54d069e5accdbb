"""The inference engines: ONNX Runtime and OpenVINO, numpy in, numpy out.

Each session takes one float32 NCHW array and returns the graph's outputs in graph order,
configured as the export's own verification ran it (ONNX Runtime's CPU provider with all
graph optimisations; OpenVINO's CPU plugin with the latency hint, one stream and the
manifest's inference precision), so the runtime reproduces the verified numbers.
TorchScript artefacts need torch and are refused here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from visiontl.deploy.artefact import Artefact
from visiontl.deploy.errors import INSTALL_DEPLOY, DeployError

#: OpenVINO's inference precision per export precision when the manifest does not say.
PRECISION_HINTS: dict[str, str | None] = {"fp32": "f32", "bf16": "bf16", "int8": None}


class Session(Protocol):
    """What the predictors need from an engine."""

    settings: dict[str, Any]

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs for one float32 NCHW array."""
        ...


class OnnxSession:
    """An ONNX file on ONNX Runtime's CPU execution provider."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
            raise DeployError(f"ONNX Runtime cannot load '{path}': {type(exc).__name__}: {_first_line(exc)}",
                              fix="export the model again with: visiontl export RUN --format onnx") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.settings: dict[str, Any] = {"runtime": f"onnxruntime {ort.__version__}", "provider": "CPUExecutionProvider",
                                         "intra_op_threads": threads}

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(array, dtype=np.float32)}))


class OpenVinoSession:
    """An OpenVINO IR compiled for the CPU plugin."""

    def __init__(self, path: Path, precision: str, threads: int | None = None, hint: str | None = None) -> None:
        import openvino as ov

        hint = hint if hint is not None else PRECISION_HINTS.get(precision)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if hint is not None:
            config["INFERENCE_PRECISION_HINT"] = hint
        try:
            self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        except Exception as exc:  # noqa: BLE001
            raise DeployError(f"OpenVINO cannot compile '{path}' for the CPU with {config}: {type(exc).__name__}: {_first_line(exc)}",
                              fix="export again, or use another export of the model (e.g. ONNX fp32)") from None
        self.request = self.compiled.create_infer_request()
        self.settings = {"runtime": f"openvino {ov.get_version()}", "device": "CPU", "threads": threads, "inference_precision": hint}

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        self.request.infer({0: np.ascontiguousarray(array, dtype=np.float32)})
        return [self.request.get_output_tensor(i).data.copy() for i in range(len(self.compiled.outputs))]


#: Format -> the module its engine needs and the package that provides it.
ENGINES = {"onnx": ("onnxruntime", "onnxruntime"), "openvino": ("openvino", "openvino")}


def open_session(artefact: Artefact, threads: int | None = None) -> Session:
    """The engine of ``artefact``, ready to run.

    Raises:
        DeployError: a TorchScript artefact (needs torch), an engine that is not installed,
            a missing file.
    """
    if artefact.format not in ENGINES:
        raise DeployError(
            f"'{artefact.manifest_path.name}' is a {artefact.format} export, which the torch-free runtime cannot run"
            + (" (TorchScript needs torch)." if artefact.format == "torchscript" else "."),
            fix="export the run to ONNX or OpenVINO: visiontl export RUN --format onnx",
        )
    module, package = ENGINES[artefact.format]
    if importlib.util.find_spec(module) is None:
        raise DeployError(f"Running the {artefact.format} export '{artefact.manifest_path.name}' needs {package}, which is not installed.",
                          fix=f"{INSTALL_DEPLOY} (or: pip install {package})")
    missing = [f for f in artefact.files if not f.is_file()]
    if missing:
        raise DeployError(f"The export file '{missing[0]}' named by '{artefact.manifest_path}' is missing.",
                          fix="keep the manifest with its files, or export again with: visiontl export")
    if artefact.format == "onnx":
        return OnnxSession(artefact.main_file, threads)
    return OpenVinoSession(artefact.main_file, artefact.precision, threads, artefact.runtime.get("inference_precision"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"
