"""``visiontl export``: export a trained run, verify it on real images, record the result.

1. Rebuild the trained model (:func:`visiontl.trained.load_trained`: a run, a checkpoint, or a
   recipe the loader accepts, ensembles included).
2. Export: the family's plugin when it answers ``visiontl_export`` (Ultralytics), otherwise
   the generic path (:func:`visiontl.export.convert.convert`). int8 is calibrated on the
   run's training images (evaluation transform) or on ``--calib DATA``.
3. Verify: run the export and the PyTorch model over the validation set; compare outputs
   (largest absolute difference, agreement of predictions) and the task's metrics (box/mask
   mAP and mAP50, mIoU and per-class IoU, accuracy), with the cost of each against PyTorch.
   A reduced precision (bf16, int8) fails verification when the primary metric drops by more
   than the tolerance; an **fp32** export must *equal* PyTorch: when any of its headline
   metrics (:data:`FP32_METRICS`) differs by more than the tolerance either way, the export is
   broken, not cheaper, and :func:`export` raises after recording why.
4. Record: the manifest beside the export gets the verification; a run's ``summary.json``
   gets an ``exports`` entry and its ``report.md`` an "Exports" table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl.export.formats import check_precision, get_format, require

#: The accuracy drop (on a 0-1 metric) beyond which verification fails: 1 point.
DEFAULT_TOLERANCE = 0.01
#: Metrics an fp32 export must reproduce within the tolerance, either way (those the task has).
FP32_METRICS = ("accuracy", "map", "map50", "mask_map", "mask_map50", "miou")
REPORT_BEGIN = "<!-- visiontl exports: begin -->"
REPORT_END = "<!-- visiontl exports: end -->"


@dataclass
class ExportReport:
    """What ``export`` did.

    Attributes:
        manifest_path: the manifest beside the export.
        manifest: its content (verification included).
        files: the files written.
        size_bytes: their total size.
        passed: whether verification passed (primary metric within the tolerance of fp32).
        problems: why it did not.
        run_dir: the run whose summary and report were updated, if any.
    """

    manifest_path: Path
    manifest: Any
    files: list[Path]
    size_bytes: int
    passed: bool
    problems: list[str] = field(default_factory=list)
    run_dir: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest_path), "files": [str(f) for f in self.files], "size_bytes": self.size_bytes,
            "passed": self.passed, "problems": list(self.problems), "run_dir": str(self.run_dir) if self.run_dir else None,
            **{k: v for k, v in self.manifest.as_dict().items() if k in ("format", "precision", "model_id", "task", "exporter", "verification", "calibration", "runtime")},
        }


def run_dir_of(target: Path) -> Path | None:
    """The run directory ``target`` belongs to (a run, or a checkpoint inside its checkpoints/)."""
    target = Path(target)
    for candidate in (target, target.parent.parent if target.is_file() else None):
        if candidate is not None and (candidate / "recipe.yaml").is_file() and (candidate / "checkpoints").is_dir():
            return candidate
    return None


def resolve_main_file(target: Path, out: Path | None, model_id: str, fmt: str, precision: str, runs_dir: str = "runs") -> Path:
    """Where the main export file goes: ``--out`` (a file with the format's suffix, or a
    folder), else ``<run>/exports/``, an ``exports/`` folder beside a checkpoint, or for a
    recipe (an ensemble) ``<output.dir>/exports/<recipe name>/``."""
    from visiontl.export.convert import default_file_name

    name = default_file_name(model_id, fmt, precision)
    if out is not None:
        out = Path(out)
        return out if out.suffix == get_format(fmt).suffix else out / name
    target = Path(target)
    run = run_dir_of(target)
    if run is not None:
        folder = run / "exports"
    elif target.suffix.lower() in (".yaml", ".yml"):
        folder = Path(runs_dir) / "exports" / target.stem
    else:
        folder = (target.parent if target.is_file() else target) / "exports"
    return folder / name


def export(
    target: str | Path,
    fmt: str,
    precision: str = "fp32",
    *,
    calib: str | Path | None = None,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    data_root: Path | None = None,
    limit: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    threads: int | None = None,
    batch_size: int = 16,
    plugins: Any = None,
    force: bool = False,
) -> ExportReport:
    """Export a trained run or checkpoint and verify it against PyTorch on real images.

    Args:
        target: a run directory or checkpoint (anything :func:`visiontl.trained.load_trained` takes).
        fmt: ``onnx``, ``openvino`` or ``torchscript``.
        precision: ``fp32``, ``bf16`` or ``int8`` (what the format supports).
        calib: int8: a folder of calibration images (default: the run's training images).
        out: the main file, or a folder for it.
        overrides: ``a.b=value`` applied to the stored recipe (e.g. ``data.root=...``).
        data_root: root of relative dataset paths (default: ``$VISIONTL_DATA_DIR``).
        limit: verify on the first ``limit`` validation images only.
        tolerance: largest accepted drop of the primary metric (0.01 = 1 point).
        threads: CPU threads of the runtime during verification.
        batch_size: verification batch size (1 for per-image detection graphs, whose
            PyTorch reference then runs one image at a time too).
        force: keep a reduced-precision (bf16, int8) export whose measured cost is beyond
            ``tolerance`` (reported as not passed) instead of refusing it.

    Returns:
        An :class:`ExportReport`; ``passed`` is false when the metric got worse beyond
        ``tolerance`` (only seen with ``force``).

    Raises:
        ExportError: unknown format/precision, missing packages, a model that cannot be exported,
            an fp32 export that does not reproduce PyTorch, or a bf16/int8 export whose cost is
            beyond ``tolerance`` (unless ``force``).

    Example:
        >>> report = export("runs/classification/hymenoptera_feature_extraction", "openvino", "int8")  # doctest: +SKIP
        >>> report.manifest.verification["delta"]  # doctest: +SKIP
    """
    from visiontl import env, trained
    from visiontl.config.loader import apply_overrides, recipe_to_dict, validate_recipe
    from visiontl.export import images
    from visiontl.export.contracts import ExportRequest
    from visiontl.export.manifest import inference_settings, write_manifest
    from visiontl.export.verify import compare
    from visiontl.plugin_manager import get_plugins
    from visiontl.train.precision import torch_threads

    spec = get_format(fmt)
    check_precision(spec, precision)
    require(spec, precision)
    plugins = plugins or get_plugins()
    target = Path(target)
    loaded = trained.load_trained(target, plugins)
    recipe = validate_recipe(apply_overrides(recipe_to_dict(loaded.recipe), list(overrides or [])), "(stored recipe with overrides)")
    task = trained.resolve_task(plugins, loaded.task)
    root = Path(data_root) if data_root else env.data_root()
    main_file = resolve_main_file(target, Path(out) if out else None, loaded.model_id, fmt, precision, recipe.output.dir)

    calibration_cache: dict[str, Any] = {}

    def calibration() -> list[Any]:
        if "batches" not in calibration_cache:
            if calib is not None:
                batches, info = images.calibration_from_folder(Path(calib), loaded.preprocessing,
                                                               raw=loaded.task in images.RAW_IMAGE_TASKS,
                                                               resize=recipe.data.resize)
            else:
                batches, info = images.calibration_from_run(recipe, task, loaded.preprocessing, root)
            calibration_cache.update(batches=batches, info=info)
        return calibration_cache["batches"]

    request = ExportRequest(
        format=fmt, precision=precision, main_file=main_file, model_id=loaded.model_id, task=loaded.task,
        class_names=list(loaded.class_names), preprocessing=loaded.preprocessing, source=str(target),
        calibration=calibration if precision == "int8" else None, resize=recipe.data.resize,
    )
    model = loaded.model.eval().to("cpu")
    with torch_threads(threads):
        artifact = produce(model, request, plugins)
        manifest, manifest_path, runtime = artifact.manifest, artifact.manifest_path, artifact.load(threads)
        if precision == "int8" and "info" in calibration_cache:
            manifest.calibration = {**calibration_cache["info"], **manifest.calibration}
        info, val = images.val_dataset(recipe, task, loaded.preprocessing, root)
        primary = recipe.eval.metric or task.primary_metric
        # A per-image detection graph sees one image at a time; so must PyTorch, which would
        # otherwise pad a batch to its largest image and detect differently.
        size = 1 if manifest.layout.kind == "detections" else batch_size
        comparison = compare(model, runtime, task, (task.evaluator(recipe, info), task.evaluator(recipe, info)),
                             images.batches(val, task, size, limit), primary)
    higher = task.higher_is_better_for(primary)
    problems = _problems(comparison, tolerance, precision, higher)
    manifest.verification = {**comparison.as_dict(), "tolerance": tolerance, "higher_is_better": higher,
                             "rule": _rule(precision, tolerance, comparison, higher),
                             "passed": not problems, "problems": problems, "runtime_settings": getattr(runtime, "settings", {})}
    # The stored recipe with this export's --set overrides decides the runtime's pre- and
    # post-processing (visiontl.deploy), not the file's copy of it.
    manifest.inference = inference_settings(loaded.task, recipe)
    write_manifest(manifest, manifest_path)
    folder = manifest_path.parent
    files = [folder / f for f in manifest.files]
    report = ExportReport(manifest_path, manifest, files, manifest.size_bytes(folder), not problems, problems)
    report.run_dir = run_dir_of(target)
    if report.run_dir is not None:
        record_in_run(report.run_dir, report)
    if precision != "fp32" and problems and not force:
        from visiontl.export.errors import ExportError

        raise ExportError(
            f"Refused: the {fmt} {precision} export of '{loaded.model_id}' costs more than the stated bound: "
            + "; ".join(problems) + f" (files and verification kept in {manifest_path} for inspection).",
            fix=f"deploy the verified fp32 export (--precision fp32){' or bf16' if fmt == 'openvino' and precision != 'bf16' else ''}, "
            "calibrate on more representative images (--calib DIR), or keep it knowingly with --force "
            "(or a larger --tolerance)",
        )
    if precision == "fp32" and problems:
        from visiontl.export.errors import ExportError

        raise ExportError(
            f"verification: FAILED: the fp32 {fmt} export of '{loaded.model_id}' does not reproduce PyTorch fp32: "
            + "; ".join(problems) + f" (recorded in {manifest_path}).",
            fix="an fp32 export must match PyTorch: report it with the manifest; meanwhile use another --format "
            "(or --tolerance to accept the difference knowingly)",
        )
    return report


def check_section(formats: list[str], precision: str) -> None:
    """Raise an :class:`ExportError` naming every format of a recipe's ``export:`` section
    that does not take its ``precision`` (before a run trains, not after)."""
    from visiontl.export.errors import ExportError
    from visiontl.export.formats import FORMATS

    bad = [f for f in formats if f in FORMATS and precision not in FORMATS[f].precisions]
    if bad:
        takes = [f for f in FORMATS if precision in FORMATS[f].precisions]
        raise ExportError(
            f"export.precision '{precision}' is not available for export.formats {', '.join(bad)} "
            f"({'; '.join(f + ' takes ' + ', '.join(FORMATS[f].precisions) for f in bad)}).",
            fix=f"set export.precision to one every format takes, or keep formats that take {precision}: {', '.join(takes)}",
        )


def export_section(
    run_dir: str | Path,
    formats: list[str],
    precision: str = "fp32",
    calib: str | Path | None = None,
    *,
    data_root: Path | None = None,
    threads: int | None = None,
    plugins: Any = None,
) -> list[ExportReport]:
    """Run a recipe's ``export:`` section on a finished run: each format exported and verified.

    ``calib``, when relative and not found from the working directory, is looked up under
    ``data_root`` like the recipe's other data paths.

    Args:
        run_dir: the finished run (its best checkpoint is exported).
        formats: ``export.formats``.
        precision: ``export.precision`` (checked against every format first).
        calib: ``export.calib`` (int8 calibration images; default the run's training images).
        data_root: root of relative data paths (default: ``$VISIONTL_DATA_DIR``).
        threads: runtime threads during verification.

    Returns:
        One :class:`ExportReport` per format; each is also recorded in the run's
        ``summary.json`` and ``report.md``.

    Raises:
        ExportError: a format/precision pair that does not exist, missing packages, a model
            that cannot be exported.
    """
    from visiontl import env

    check_section(list(formats), precision)
    calib_path: Path | None = None
    if calib is not None:
        calib_path = Path(calib).expanduser()
        if not calib_path.is_absolute() and not calib_path.exists():
            calib_path = (Path(data_root) if data_root else env.data_root()) / calib_path
    # The run is finished: a reduced-precision export beyond its bound is recorded in the
    # run's summary (passed: false) rather than raised after all the training.
    return [export(run_dir, fmt, precision, calib=calib_path if precision == "int8" else None, data_root=data_root,
                   threads=threads, plugins=plugins, force=True) for fmt in formats]


def produce(model: Any, request: Any, plugins: Any) -> Any:
    """Export ``model`` as ``request`` asks: the family plugin's exporter when it answers
    ``visiontl_export``, else the generic converter. Returns an
    :class:`~visiontl.export.contracts.ExportArtifact` (manifest written, loader ready).

    int8 calibration batches are drawn from ``request.calibration`` only when needed.
    """
    from visiontl.export.contracts import ExportArtifact
    from visiontl.export.convert import ModelToExport, convert
    from visiontl.export.manifest import manifest_path_for
    from visiontl.export.runtime import load_runtime

    artifact = plugins.hook.visiontl_export(model=model, request=request)
    if artifact is not None:
        return artifact
    item = ModelToExport(model, request.model_id, request.task, list(request.class_names), request.preprocessing, request.source,
                         resize=request.resize)
    calibration = request.calibration if request.precision == "int8" else None
    manifest = convert(item, request.format, request.precision, request.main_file, calibration, request.calibration_info)
    path = manifest_path_for(request.main_file)
    return ExportArtifact(manifest, path, lambda threads: load_runtime(path, threads))


def _problems(comparison: Any, tolerance: float, precision: str = "fp32", higher_is_better: bool = True) -> list[str]:
    """Why verification failed: the primary metric got worse (in the task's direction for it:
    lower for an error such as MAE) by more than ``tolerance``; for fp32, also any headline
    metric off by more than ``tolerance`` either way. A better export never fails."""
    problems: list[str] = []
    delta = comparison.delta
    name = comparison.primary_metric
    worse = -delta if higher_is_better else delta  # > 0: the export is worse than PyTorch
    if math.isnan(delta):
        problems.append(f"{name} could not be computed for both models")
    elif worse > tolerance:
        change = "dropped" if higher_is_better else "rose"
        problems.append(f"{name} {change} {abs(delta) * 100:.2f} points from PyTorch fp32 "
                        f"({comparison.reference.get(name, math.nan):.4f} -> {comparison.exported.get(name, math.nan):.4f}), "
                        f"beyond the tolerance of {tolerance * 100:.2f}" + ("" if higher_is_better else " (lower is better)"))
    if precision == "fp32":
        for metric in _fp32_metrics(comparison):
            if metric == name and worse > tolerance:
                continue  # already said
            ref, exp = float(comparison.reference[metric]), float(comparison.exported[metric])
            if not (math.isnan(ref) and math.isnan(exp)) and not abs(exp - ref) <= tolerance:
                problems.append(f"{metric} differs from PyTorch fp32 by {(exp - ref) * 100:+.2f} points ({ref:.4f} -> {exp:.4f}), "
                                f"beyond the fp32 tolerance of {tolerance * 100:.2f}")
    return problems


def _fp32_metrics(comparison: Any) -> list[str]:
    names = [m for m in (comparison.primary_metric, *FP32_METRICS) if m in comparison.reference and m in comparison.exported]
    return list(dict.fromkeys(names))


def _rule(precision: str, tolerance: float, comparison: Any, higher_is_better: bool = True) -> str:
    """The verification rule in words (stored with the verification)."""
    way = "drop" if higher_is_better else "rise (lower is better)"
    drop = f"{comparison.primary_metric} may {way} at most {tolerance * 100:.2f} points from PyTorch fp32"
    if precision != "fp32":
        return drop + f" ({precision}: the cost of the precision is reported per metric in 'deltas')"
    return (f"fp32 must reproduce PyTorch: {', '.join(_fp32_metrics(comparison))} within +-{tolerance * 100:.2f} points "
            "each, else the export fails")


def record_in_run(run: Path, report: ExportReport) -> None:
    """Add the export to the run's ``summary.json`` (``exports``) and ``report.md`` (a table)."""
    from visiontl.runs.layout import atomic_write_text

    summary_path = run / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        manifest = report.manifest
        ver = manifest.verification
        key = f"{manifest.format}-{manifest.precision}"
        summary.setdefault("exports", {})[key] = {
            "manifest": str(report.manifest_path), "exporter": manifest.exporter, "size_bytes": report.size_bytes,
            "primary_metric": ver.get("primary_metric"), "pytorch_fp32": ver.get("pytorch_fp32", {}).get(ver.get("primary_metric", "")),
            "export": ver.get("export", {}).get(ver.get("primary_metric", "")), "agreement": ver.get("agreement"),
            "agreement_unit": ver.get("agreement_unit"), "max_abs_diff": ver.get("max_abs_diff"), "images": ver.get("images"),
            "passed": ver.get("passed"),
        }
        atomic_write_text(summary_path, json.dumps(summary, indent=2, default=str) + "\n")
        _write_report_section(run / "report.md", summary["exports"])


def _write_report_section(path: Path, exports: dict[str, dict[str, Any]]) -> None:
    from visiontl.runs.layout import atomic_write_text

    lines = [REPORT_BEGIN, "", "## Exports", "",
             "Verified against PyTorch fp32 on the validation images (`visiontl export`).", "",
             "| export | size MB | metric | PyTorch fp32 | export | agreement | max abs diff | verified |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for key, row in exports.items():
        lines.append(
            f"| {key} ({row.get('exporter')}) | {row.get('size_bytes', 0) / 1e6:.2f} | {row.get('primary_metric')} | "
            f"{_num(row.get('pytorch_fp32'))} | {_num(row.get('export'))} | {_num(row.get('agreement'))} ({row.get('agreement_unit')}) | "
            f"{_num(row.get('max_abs_diff'), '.2e')} | {'yes' if row.get('passed') else 'NO'} |")
    lines += ["", REPORT_END]
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if REPORT_BEGIN in text and REPORT_END in text:
        head, rest = text.split(REPORT_BEGIN, 1)
        tail = rest.split(REPORT_END, 1)[1]
        text = head + "\n".join(lines) + tail
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    atomic_write_text(path, text)


def _num(value: Any, fmt: str = ".4f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"
