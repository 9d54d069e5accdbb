"""The manifest written next to every export (``<name>.export.json``).

It says what the files are (format, precision, input, output layout, runtime settings), what
model they came from (id, task, classes, preprocessing), and how the export compared with
PyTorch when it was verified. :func:`visiontl.export.runtime.load_runtime` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from visiontl.export.errors import ExportError
from visiontl.export.graph import OutputLayout

SUFFIX = ".export.json"


@dataclass
class ExportManifest:
    """What an export is and how it was checked.

    Attributes:
        format: ``onnx``, ``openvino``, ``torchscript``.
        precision: ``fp32``, ``bf16`` or ``int8``.
        files: the export's files, relative to the manifest's folder, main file first.
        model_id: the model exported.
        task: its task.
        class_names: output classes in order.
        preprocessing: input size, mean, std ... the exported graph expects normalised input.
        input: ``{"name", "shape"}``, ``None`` for dynamic axes.
        layout: output form (see :class:`~visiontl.export.graph.OutputLayout`).
        runtime: settings the runtime must use (e.g. OpenVINO's inference precision).
        exporter: who exported it (``visiontl``, or a plugin such as ``ultralytics``).
        source: the run directory or checkpoint it came from.
        calibration: for int8, the images used to calibrate.
        verification: the comparison with PyTorch on real images.
        versions: library versions at export time.
        extras: family-specific data (plugin exports).
    """

    format: str
    precision: str
    files: list[str]
    model_id: str
    task: str
    class_names: list[str]
    preprocessing: dict[str, Any]
    input: dict[str, Any]
    layout: OutputLayout
    runtime: dict[str, Any] = field(default_factory=dict)
    exporter: str = "visiontl"
    source: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def main_file(self, folder: Path) -> Path:
        return folder / self.files[0]

    def size_bytes(self, folder: Path) -> int:
        """Bytes of every file of the export."""
        return sum((folder / f).stat().st_size for f in self.files if (folder / f).is_file())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layout"] = self.layout.as_dict()
        return out


def manifest_path_for(main_file: Path) -> Path:
    """``model.onnx`` -> ``model.export.json`` (beside it)."""
    return main_file.with_name(main_file.stem + SUFFIX)


def write_manifest(manifest: ExportManifest, path: Path) -> Path:
    from visiontl.runs.layout import atomic_write_text

    atomic_write_text(path, json.dumps(manifest.as_dict(), indent=2, default=str) + "\n")
    return path


def read_manifest(path: Path) -> ExportManifest:
    """Read a manifest, or raise an :class:`ExportError` saying what is wrong with it."""
    if not path.is_file():
        raise ExportError(f"Export manifest '{path}' does not exist.", fix="pass the *.export.json written by 'visiontl export'")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["layout"] = OutputLayout.from_dict(raw["layout"])
        return ExportManifest(**raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"'{path}' is not a visiontl export manifest ({type(exc).__name__}: {exc}).",
                          fix="export again with: visiontl export") from None


def find_manifest(path: Path) -> Path:
    """The manifest of an export given by its manifest, its main file or its folder."""
    if path.name.endswith(SUFFIX):
        return path
    if path.is_dir():
        found = sorted(path.glob(f"*{SUFFIX}"))
        if len(found) == 1:
            return found[0]
        raise ExportError(f"'{path}' holds {len(found)} export manifests; name one.", fix="pass the *.export.json file")
    return manifest_path_for(path)
