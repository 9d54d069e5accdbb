"""Exported models run as ``nn.Module`` s, so every task's evaluation code runs them unchanged.

A :class:`RuntimeModule` takes the same float tensor a PyTorch model takes, hands it to the
runtime (ONNX Runtime, OpenVINO, TorchScript) and gives back torch tensors in the model's own
output form (tensor, tuple or mapping, from the stored :class:`~visiontl.export.graph.OutputLayout`;
per-image detection graphs take a list of images and give back a list of detection dicts, see
:mod:`visiontl.export.detection`).
The task's ``forward_eval`` and evaluator, the verification and the benchmark harness all use
it like any other model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from visiontl.export.errors import ExportError
from visiontl.export.graph import OutputLayout


class RuntimeModule(nn.Module):
    """Base class: ``forward(x)`` converts to numpy, calls :meth:`run`, rebuilds the outputs.

    Attributes:
        format: ``onnx``, ``openvino`` or ``torchscript``.
        precision: ``fp32``, ``bf16`` or ``int8``.
        path: the main file.
        layout: the model's output form.
        settings: what the runtime was configured with (threads, precision hints ...), recorded
            with every measurement.
    """

    def __init__(self, fmt: str, precision: str, path: Path, layout: OutputLayout) -> None:
        super().__init__()
        self.format = fmt
        self.precision = precision
        self.path = Path(path)
        self.layout = layout
        self.settings: dict[str, Any] = {}

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        """The runtime's outputs for one float32 NCHW batch."""
        raise NotImplementedError

    def forward(self, x: Any) -> Any:
        if self.layout.kind == "detections":
            # A per-image detection graph: the images (a list or a batch) one at a time, and
            # the detection contract's list of dicts back.
            from visiontl.export.detection import run_per_image

            return run_per_image(self.run, x, self.layout)
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        outputs = [torch.from_numpy(np.ascontiguousarray(o)).float() for o in self.run(array)]
        return self.layout.rebuild(outputs)

    def extra_repr(self) -> str:
        return f"format={self.format}, precision={self.precision}, path={self.path}"


def load_runtime(manifest_path: Path, threads: int | None = None) -> RuntimeModule:
    """The :class:`RuntimeModule` of an export, from its manifest (``*.export.json``).

    Args:
        manifest_path: the manifest written next to the export.
        threads: CPU threads the runtime may use (``None``: the runtime's default).

    Raises:
        ExportError: the manifest or its files are missing, or the runtime is not installed.
    """
    from visiontl.export.formats import get_format, require
    from visiontl.export.manifest import read_manifest

    manifest = read_manifest(manifest_path)
    fmt = get_format(manifest.format)
    require(fmt, "fp32")
    path = manifest.main_file(manifest_path.parent)
    if not path.is_file():
        raise ExportError(f"The export file '{path}' named by '{manifest_path}' is missing.", fix="export again with: visiontl export")
    layout = manifest.layout
    if fmt.name == "onnx":
        from visiontl.export.onnx_backend import OnnxRuntimeModule

        return OnnxRuntimeModule(path, manifest.precision, layout, threads)
    if fmt.name == "openvino":
        from visiontl.export.openvino_backend import OpenVinoModule

        return OpenVinoModule(path, manifest.precision, layout, threads, manifest.runtime.get("inference_precision"))
    from visiontl.export.torchscript_backend import TorchScriptModule

    return TorchScriptModule(path, manifest.precision, layout)
