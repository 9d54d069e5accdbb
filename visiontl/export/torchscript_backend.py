"""TorchScript: ``torch.jit.trace``, frozen for inference, run by torch itself.

bf16 casts the weights and the input to bfloat16 (not autocast): the saved module is
self-contained and needs no autocast context at run time.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from visiontl.export.errors import ExportError
from visiontl.export.graph import OutputLayout
from visiontl.export.runtime import RuntimeModule

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def export_torchscript(view: nn.Module, example: torch.Tensor, path: Path, precision: str, model_id: str) -> None:
    """Trace ``view`` at ``precision`` and save it to ``path``."""
    dtype = DTYPES[precision]
    module = copy.deepcopy(view).to(dtype).eval() if dtype != torch.float32 else view.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python values turned constants
            traced = torch.jit.trace(module, example.to(dtype), check_trace=False)
            traced = torch.jit.freeze(traced.eval())
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"TorchScript tracing of '{model_id}' failed: {type(exc).__name__}: {_first_line(exc)}",
            fix="try --format onnx or openvino; run with --debug for the traceback",
        ) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice: TorchScript still runs everywhere torch does
        torch.jit.save(traced, str(path))


class TorchScriptModule(RuntimeModule):
    """A saved TorchScript module (runs on torch's own CPU kernels and threads)."""

    def __init__(self, path: Path, precision: str, layout: OutputLayout) -> None:
        super().__init__("torchscript", precision, path, layout)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.scripted = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"Cannot load TorchScript file '{path}': {type(exc).__name__}: {_first_line(exc)}",
                              fix="export again with: visiontl export") from None
        self.dtype = DTYPES.get(precision, torch.float32)
        self.settings = {"runtime": f"torch.jit {torch.__version__}", "threads": torch.get_num_threads(), "dtype": str(self.dtype)}

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            outputs = self.scripted(torch.from_numpy(array).to(self.dtype))
        outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
        return [o.float().numpy() if o.is_floating_point() else o.numpy() for o in outputs]

    def forward(self, x: Any) -> Any:
        if self.layout.kind == "detections":
            return super().forward(x)
        with torch.inference_mode():
            outputs = self.scripted(x.to("cpu", self.dtype))
        if isinstance(outputs, torch.Tensor):  # a graph with one output (not traced by visiontl)
            outputs = (outputs,)
        return self.layout.rebuild([o.float() for o in outputs])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"
