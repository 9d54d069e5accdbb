"""The manifest written next to every export (``<name>.export.json``).

It says what the files are (format, precision, input, output layout, runtime settings), what
model they came from (id, task, classes, preprocessing), and how the export compared with
PyTorch when it was verified. :func:`visiontl.export.runtime.load_runtime` reads it back,
and so does the torch-free runtime (:mod:`visiontl.deploy`), which also needs the recipe's
inference settings (``inference``: how images reach the input size, the score threshold,
segmentation's inference mode ...); :func:`write_manifest` records them from the export's
source run when the exporter did not.
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
        extras: family-specific data (plugin exports: post-processing parameters).
        inference: the recipe settings that decide pre- and post-processing outside the
            graph (:func:`inference_settings`), for runtimes that reproduce
            ``visiontl predict``/``eval`` without the run.
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
    inference: dict[str, Any] = field(default_factory=dict)

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


#: ``data`` settings a runtime needs: how images reach the input size, how masks decode.
INFERENCE_DATA_KEYS = ("image_size", "resize", "ignore_index", "value_map", "mask_colors")


def inference_settings(task: str, recipe: Any) -> dict[str, Any]:
    """What a runtime needs from ``recipe`` (a validated :class:`~visiontl.config.schema.Recipe`)
    to pre- and post-process as ``visiontl predict``/``eval`` do with the run.

    Returns:
        ``{"data": {image_size, resize, ignore_index, value_map, mask_colors}, "eval": {the
        eval section}}`` and, for segmentation, ``{"segmentation": {size_multiple,
        auto_sliding_ratio}}`` (the constants of visiontl's segmentation inference).
    """
    dumped = recipe.data.model_dump(mode="json")
    out: dict[str, Any] = {"data": {k: dumped.get(k) for k in INFERENCE_DATA_KEYS}, "eval": recipe.eval.model_dump(mode="json")}
    if task == "segmentation":
        from visiontl.data.segmentation.inference import SIZE_MULTIPLE
        from visiontl.tasks.segmentation import AUTO_SLIDING_RATIO

        out["segmentation"] = {"size_multiple": SIZE_MULTIPLE, "auto_sliding_ratio": AUTO_SLIDING_RATIO}
    return out


def recipe_of_source(source: str) -> Any | None:
    """The validated recipe of an export's source: a run directory (its ``recipe.yaml``), a
    checkpoint (its stored recipe), or a recipe file; ``None`` when there is none to read."""
    if not source:
        return None
    from visiontl.config.loader import load_recipe, validate_recipe

    path = Path(source)
    try:
        if path.is_dir() and (path / "recipe.yaml").is_file():
            return load_recipe(path / "recipe.yaml")
        if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
            return load_recipe(path)
        if path.is_file():
            run = path.parent.parent
            if path.parent.name == "checkpoints" and (run / "recipe.yaml").is_file():
                return load_recipe(run / "recipe.yaml")
            from visiontl.train.checkpoint import load_checkpoint

            return validate_recipe(load_checkpoint(path)["recipe"], f"stored in '{path}'")
    except Exception as exc:  # noqa: BLE001 - the export stands without them; say what is left out
        from visiontl import log

        log.warning(f"the export's manifest records no inference settings: the recipe of '{source}' cannot be read "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); runtimes will use the defaults")
        return None
    return None


def write_manifest(manifest: ExportManifest, path: Path) -> Path:
    """Write ``manifest`` to ``path``; its ``inference`` settings are first read from its
    source run when empty (so every exporter, plugins included, records them)."""
    from visiontl.runs.layout import atomic_write_text

    if not manifest.inference:
        recipe = recipe_of_source(manifest.source)
        if recipe is not None:
            manifest.inference = inference_settings(manifest.task, recipe)
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
