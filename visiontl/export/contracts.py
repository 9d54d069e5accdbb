"""What crosses the ``visiontl_export`` hook: the request and the plugin's answer.

No torch at import time (plugins import this from their hook modules).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from torch import nn

    from visiontl.contracts import Preprocessing
    from visiontl.export.manifest import ExportManifest


@dataclass
class ExportRequest:
    """What to export and where.

    Attributes:
        format: ``onnx``, ``openvino`` or ``torchscript``.
        precision: ``fp32``, ``bf16`` or ``int8``.
        main_file: where the main file goes (its folder holds the manifest too).
        model_id: the model's id.
        task: the model's task.
        class_names: classes in output order.
        preprocessing: the model's input convention.
        source: the run directory or checkpoint exported.
        calibration: int8 only: returns float32 ``[1, 3, H, W]`` batches of real images.
        calibration_info: where those images come from.
        options: exporter options from the command line (reserved).
        resize: the model's ``data.resize`` (``auto``, ``stretch``, ``letterbox``): how images
            are brought to the input size; recorded in the manifest's preprocessing.
    """

    format: str
    precision: str
    main_file: Path
    model_id: str
    task: str
    class_names: Sequence[str]
    preprocessing: Preprocessing
    source: str = ""
    calibration: Callable[[], Sequence[np.ndarray]] | None = None
    calibration_info: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    resize: str = "auto"


@dataclass
class ExportArtifact:
    """A finished export.

    Attributes:
        manifest: its manifest (already written beside the files).
        manifest_path: where the manifest is.
        load: ``load(threads)`` returns the export as a module that answers the task's eval
            contract (so the task's evaluator can score it and it can be timed).
    """

    manifest: ExportManifest
    manifest_path: Path
    load: Callable[[int | None], nn.Module]
