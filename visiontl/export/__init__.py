"""Exporting trained models (ONNX, OpenVINO, TorchScript; fp32, bf16, int8) and verifying them.

* :func:`visiontl.export.pipeline.export` — what ``visiontl export`` runs: rebuild a run's
  model, export it (the family plugin's exporter when it has one, the generic path
  otherwise), verify it against PyTorch on the validation images, record the result.
* :func:`visiontl.export.convert.convert` — the generic exporter (shared with
  ``visiontl benchmark --formats``).
* :func:`visiontl.export.convert.export_graph` — the writer behind it, for plugins that trace
  a view of their own (torchvision detectors: one graph per image, NMS inside).
* :mod:`visiontl.export.detection` — per-image detection graphs (layout, axes, runtime).
* :func:`visiontl.export.runtime.load_runtime` — an export as an ``nn.Module``.
* :mod:`visiontl.export.formats` — the formats, their precisions and what they need.

Nothing here imports torch at package import time (the CLI lists formats without it).
"""

from visiontl.export.errors import ExportError
from visiontl.export.formats import FORMATS

__all__ = ["FORMATS", "ExportError"]
