"""An exported artefact as the runtime sees it: its manifest, read without torch.

``visiontl export`` writes ``<name>.export.json`` beside the files it exports
(:mod:`visiontl.export.manifest`). That module's reader rebuilds torch-side objects, so the
runtime reads the same JSON here into a plain :class:`Artefact`, and finds it from whatever
the user points at: the manifest, the main file beside it, or the folder that holds them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl.deploy.errors import DeployError

#: The manifest's file-name suffix (as :data:`visiontl.export.manifest.SUFFIX`).
SUFFIX = ".export.json"


@dataclass(frozen=True)
class Artefact:
    """One export and what the runtime needs to use it.

    Attributes:
        manifest_path: the ``*.export.json``.
        format: ``onnx``, ``openvino`` (``torchscript`` needs torch: refused).
        precision: ``fp32``, ``bf16`` or ``int8``.
        files: the export's files, main file first (absolute).
        model_id: the model exported.
        task: its task.
        class_names: output classes in order.
        preprocessing: ``input_size``, ``mean``, ``std``, ``interpolation``, ``crop_pct``
            (``letterbox`` for YOLO exports).
        input: ``{"name", "shape", "normalised"}``.
        layout_kind: ``tensor``, ``tuple``, ``mapping`` or ``detections``.
        output_names: graph outputs in order.
        runtime: runtime settings (OpenVINO's ``inference_precision``).
        exporter: ``visiontl`` or the plugin that exported it (``ultralytics``).
        inference: the recipe's settings the runtime reproduces (``data`` and ``eval``; see
            :func:`visiontl.export.manifest.inference_settings`); empty for older exports.
        extras: family facts (post-processing parameters).
        verification: how the export compared with PyTorch when it was exported.
    """

    manifest_path: Path
    format: str
    precision: str
    files: tuple[Path, ...]
    model_id: str
    task: str
    class_names: tuple[str, ...]
    preprocessing: dict[str, Any]
    input: dict[str, Any]
    layout_kind: str
    output_names: tuple[str, ...]
    runtime: dict[str, Any] = field(default_factory=dict)
    exporter: str = "visiontl"
    inference: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)

    @property
    def main_file(self) -> Path:
        return self.files[0]

    def data_setting(self, name: str, default: Any) -> Any:
        """A ``data.*`` setting of the recipe the model was trained with (``default`` when
        the manifest does not record it)."""
        value = self.inference.get("data", {}).get(name)
        return default if value is None else value

    def eval_setting(self, name: str, default: Any) -> Any:
        """An ``eval.*`` setting of the recipe (``default`` when not recorded)."""
        value = self.inference.get("eval", {}).get(name)
        return default if value is None else value

    def describe(self) -> str:
        return f"{self.model_id} ({self.task}, {self.format} {self.precision}, {self.manifest_path.name})"


def read_artefact(path: Path) -> Artefact:
    """Read one manifest.

    Raises:
        DeployError: the file is missing or is not a visiontl export manifest.
    """
    if not path.is_file():
        raise DeployError(f"Export manifest '{path}' does not exist.", fix="pass the *.export.json written by 'visiontl export', or its folder")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        folder = path.parent
        layout = raw["layout"]
        return Artefact(
            manifest_path=path,
            format=str(raw["format"]),
            precision=str(raw["precision"]),
            files=tuple(folder / f for f in raw["files"]),
            model_id=str(raw["model_id"]),
            task=str(raw["task"]),
            class_names=tuple(str(c) for c in raw["class_names"]),
            preprocessing=dict(raw["preprocessing"]),
            input=dict(raw.get("input") or {}),
            layout_kind=str(layout["kind"]),
            output_names=tuple(str(n) for n in layout["names"]),
            runtime=dict(raw.get("runtime") or {}),
            exporter=str(raw.get("exporter", "visiontl")),
            inference=dict(raw.get("inference") or {}),
            extras=dict(raw.get("extras") or {}),
            verification=dict(raw.get("verification") or {}),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DeployError(f"'{path}' is not a visiontl export manifest ({type(exc).__name__}: {exc}).",
                          fix="export again with: visiontl export RUN --format onnx") from None


def manifests_in(path: Path) -> list[Path]:
    """The manifests ``path`` names: itself, the one beside a main file, or those in a folder."""
    path = Path(path)
    if path.name.endswith(SUFFIX):
        return [path] if path.is_file() else []
    if path.is_dir():
        return sorted(path.glob(f"*{SUFFIX}"))
    beside = path.with_name(path.stem + SUFFIX)  # model.onnx -> model.export.json
    return [beside] if beside.is_file() else []


def is_artefact(path: Path) -> bool:
    """Whether ``path`` is an export (a manifest, a main file with its manifest, or a folder
    holding at least one manifest) rather than a run, a checkpoint or a recipe."""
    return bool(manifests_in(Path(path)))


def find_artefact(path: Path, fmt: str | None = None, precision: str | None = None) -> Artefact:
    """The artefact ``path`` names; in a folder of several, the one ``fmt``/``precision`` pick.

    Raises:
        DeployError: nothing found, nothing matching, or several left to choose from.
    """
    path = Path(path)
    found = manifests_in(path)
    if not found:
        raise DeployError(f"No export manifest (*{SUFFIX}) at '{path}'.",
                          fix="pass the folder or manifest written by 'visiontl export RUN --format onnx'")
    artefacts = [read_artefact(p) for p in found]
    chosen = [a for a in artefacts if (fmt is None or a.format == fmt) and (precision is None or a.precision == precision)]
    listing = ", ".join(f"{a.manifest_path.name} ({a.format} {a.precision})" for a in artefacts)
    if not chosen:
        raise DeployError(f"No export in '{path}' is {' '.join(x for x in (fmt, precision) if x)}; it holds: {listing}.",
                          fix="choose one of those formats/precisions, or export it: visiontl export RUN --format FORMAT --precision PRECISION")
    if len(chosen) > 1:
        raise DeployError(f"'{path}' holds {len(chosen)} exports: {listing}.",
                          fix="pass one manifest file, or pick by format and precision (e.g. --format onnx --precision fp32)")
    return chosen[0]
