"""What gets exported: a model seen as tensor in, tensors out.

Exporters trace a graph from one input tensor to a fixed list of output tensors. visiontl
models answer with a tensor (classification logits, SMP segmentation logits), a mapping
(torchvision segmentation's ``{"out", "aux"}``) or, for detectors, a list of per-image dicts
made by Python post-processing (box decoding, NMS) that this generic probe cannot turn into
graph outputs (detector families export through their plugin: :mod:`visiontl.export.detection`).
:func:`exportable` probes the model once on the example input, says which of these it is,
and wraps the first two in :class:`TensorOutputs`, whose outputs are a plain tuple; the layout
(:class:`OutputLayout`) is stored with the export so the runtime hands back the original form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from visiontl.export.errors import ExportError


@dataclass(frozen=True)
class OutputLayout:
    """The form of a model's eval output.

    Attributes:
        kind: ``tensor`` (one tensor), ``tuple`` (a tuple/list of tensors), ``mapping``, or
            ``detections`` (a per-image detection graph, see :mod:`visiontl.export.detection`;
            the runtime runs it once per image and returns a list of detection dicts).
        names: output names, in graph order (mapping keys for ``mapping``).
    """

    kind: str
    names: tuple[str, ...]

    def rebuild(self, outputs: list[torch.Tensor]) -> Any:
        """The runtime's output list in the model's own form."""
        if self.kind == "tensor":
            return outputs[0]
        if self.kind == "mapping":
            return dict(zip(self.names, outputs, strict=True))
        return tuple(outputs)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "names": list(self.names)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputLayout:
        return cls(str(data["kind"]), tuple(data["names"]))


class TensorOutputs(nn.Module):
    """``model`` with its outputs flattened to a tuple of tensors (mapping values in key order,
    ``None`` entries dropped), for tracing."""

    def __init__(self, model: nn.Module, layout: OutputLayout) -> None:
        super().__init__()
        self.model = model
        self.layout = layout

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        if self.layout.kind == "tensor":
            return (out,)
        if self.layout.kind == "mapping":
            return tuple(out[name] for name in self.layout.names)
        return tuple(out)


def output_layout(outputs: Any, model_id: str) -> OutputLayout:
    """The :class:`OutputLayout` of one eval output, or an :class:`ExportError` saying why the
    output cannot be a graph output."""
    if isinstance(outputs, torch.Tensor):
        return OutputLayout("tensor", ("output",))
    if isinstance(outputs, Mapping) and outputs and all(isinstance(v, torch.Tensor) or v is None for v in outputs.values()):
        names = tuple(str(k) for k, v in outputs.items() if v is not None)
        return OutputLayout("mapping", names)
    if isinstance(outputs, (tuple, list)) and outputs and all(isinstance(v, torch.Tensor) for v in outputs):
        return OutputLayout("tuple", tuple(f"output{i}" for i in range(len(outputs))))
    if isinstance(outputs, (tuple, list)) and outputs and all(isinstance(v, Mapping) for v in outputs):
        raise ExportError(
            f"'{model_id}' returns one dict of detections per image, made by Python post-processing "
            "(box decoding, score filtering, NMS) that the generic ONNX/OpenVINO/TorchScript exporter cannot trace.",
            fix="a detector family exports through its plugin's visiontl_export hook, as Ultralytics (ultralytics:yolov8n ...) "
            "and torchvision detectors (torchvision:fasterrcnn ..., one per-image graph, see visiontl.export.detection) do; "
            "is the family's plugin installed (visiontl plugins)?",
        )
    raise ExportError(
        f"'{model_id}' returns {type(outputs).__name__} in eval mode; an exported graph needs a tensor, "
        "a tuple of tensors or a mapping of tensors.",
        fix="export a model whose eval forward returns tensors",
    )


def exportable(model: nn.Module, example: torch.Tensor, model_id: str) -> tuple[TensorOutputs, OutputLayout]:
    """``model`` (in eval mode) wrapped for tracing, and its output layout.

    Raises:
        ExportError: the model does not run on ``example`` or its output is not tensors.
    """
    model = model.eval()
    try:
        with torch.no_grad():
            outputs = model(example)
    except Exception as exc:  # noqa: BLE001 - any failure of the probe becomes one clear message
        raise ExportError(
            f"'{model_id}' does not run on an input of shape {tuple(example.shape)}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
            fix="pass --input-size matching the model, or export a trained run (its recipe knows the size)",
        ) from None
    layout = output_layout(outputs, model_id)
    return TensorOutputs(model, layout).eval(), layout


def flat_outputs(outputs: Any) -> list[torch.Tensor]:
    """A model output (tensor, tuple, mapping) as a list of tensors (for comparisons)."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, Mapping):
        return [v for v in outputs.values() if isinstance(v, torch.Tensor)]
    if isinstance(outputs, (tuple, list)):
        return [t for t in outputs if isinstance(t, torch.Tensor)]
    return []
