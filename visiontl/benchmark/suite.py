"""``visiontl benchmark``: every target x format x precision x batch, measured one way.

For each target (model id, run, checkpoint, recipe) the suite

1. counts parameters, MACs per image (batch 1) and the size of the PyTorch weights;
2. prepares each requested format: PyTorch eager as it is, the others exported by
   :mod:`visiontl.export` (the family plugin's exporter when it has one: Ultralytics) into a
   work folder, int8 calibrated on real images when there are some;
3. scores each format once on ``--data`` (the task's primary metric, through the task's own
   evaluator) when data is given;
4. times each batch size through the ``visiontl_benchmark`` hook (the generic harness unless
   the family answers it): exported models are ``nn.Module`` s too, so one harness and one
   method time every format.

Every row records threads, batch, precision, device, CPU and library versions. What could not
be measured is listed in ``skipped`` with the reason, never dropped silently.
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from visiontl import log
from visiontl.benchmark.formats import BenchFormat
from visiontl.benchmark.targets import Target, load_targets
from visiontl.contracts import BenchmarkRequest
from visiontl.errors import ConfigError, DataError, VisiontlError

#: Random-noise batches used to calibrate int8 when no real images are at hand (latency only).
NOISE_CALIBRATION = 16


@dataclass
class SuiteSpec:
    """What to measure and how.

    Attributes:
        formats: formats to measure.
        precisions: precisions for formats that take one.
        batches: batch sizes.
        threads: CPU threads for torch and every runtime (``None``: torch's current setting).
        device: ``cpu`` or ``cuda``.
        input_size: overrides every target's input size.
        task, num_classes, pretrained: for bare model ids.
        data: a dataset root to score accuracy on (the target's recipe format; bare ids:
            the task's default format).
        overrides: ``a.b=value`` for the recipe used with ``data``.
        calib: a folder of int8 calibration images.
        limit: score accuracy on the first ``limit`` validation images only.
        warmup, min_repeats, min_seconds: the harness's stopping rule.
        workdir: where exports are written (default: a temporary folder, removed after).
        data_root: root of relative dataset paths (default: ``$VISIONTL_DATA_DIR``).
        masks: a folder of ground-truth object masks: each target's CAM energy inside them
            is scored (:func:`visiontl.explain.score.cam_energy_in_mask`).
        mask_images: the images of those masks (default: the ``images`` folder beside them).
        target_class: the class the CAMs explain (default: the predicted one).
        cam_method: the CAM method (default: the task's).
    """

    formats: list[BenchFormat]
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    batches: list[int] = field(default_factory=lambda: [1])
    threads: int | None = None
    device: str = "cpu"
    input_size: tuple[int, int] | None = None
    task: str | None = None
    num_classes: int | None = None
    pretrained: bool = False
    data: Path | None = None
    overrides: list[str] = field(default_factory=list)
    calib: Path | None = None
    limit: int | None = None
    warmup: int = 5
    min_repeats: int = 20
    min_seconds: float = 1.0
    workdir: Path | None = None
    data_root: Path | None = None
    masks: Path | None = None
    mask_images: Path | None = None
    target_class: str | None = None
    cam_method: str | None = None

    def root(self) -> Path:
        from visiontl import env

        return Path(self.data_root) if self.data_root else env.data_root()


@dataclass
class SuiteResult:
    """Rows, what was skipped and why, and the verdicts (fastest format per target and batch)."""

    rows: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    verdicts: list[str]
    conditions: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"conditions": self.conditions, "rows": self.rows, "skipped": self.skipped, "verdicts": self.verdicts}


# --------------------------------------------------------------------------- data


def _data_recipe(target: Target, spec: SuiteSpec) -> Any:
    """The recipe that scores ``target`` on ``spec.data`` (its own recipe with data.root
    replaced, or a minimal one for a bare model id)."""
    from visiontl.config.loader import apply_overrides, recipe_to_dict, validate_recipe

    if target.recipe is not None:
        data = recipe_to_dict(target.recipe)
        data["data"]["root"] = str(Path(spec.data).resolve()) if spec.data else data["data"]["root"]
    else:
        data = {"task": target.task, "data": {"root": str(Path(spec.data).resolve())}, "model": {"id": target.model_id}}
    return validate_recipe(apply_overrides(data, list(spec.overrides)), "(benchmark --data recipe)")


def _bare_recipe(task: str, model_id: str, spec: SuiteSpec) -> Any:
    from visiontl.config.loader import apply_overrides, validate_recipe

    data = {"task": task, "data": {"root": str(Path(spec.data).resolve())}, "model": {"id": model_id}}  # type: ignore[arg-type]
    return validate_recipe(apply_overrides(data, list(spec.overrides)), "(benchmark --data recipe)")


class Scorer:
    """Scores modules on the validation split of ``spec.data`` with the target's task."""

    def __init__(self, target: Target, spec: SuiteSpec, plugins: Any) -> None:
        from visiontl.export.images import val_dataset
        from visiontl.trained import resolve_task

        self.recipe = _data_recipe(target, spec)
        self.task = resolve_task(plugins, target.task)
        self.root = spec.root()
        self.info, self.val = val_dataset(self.recipe, self.task, target.preprocessing, self.root)
        if list(self.info.class_names) != list(target.class_names):
            raise DataError(
                f"The classes of '{spec.data}' {self.info.class_names} differ from those of '{target.label}' {target.class_names}.",
                fix="score a model on data with the classes it was trained on",
            )
        self.metric = self.recipe.eval.metric or self.task.primary_metric
        self.limit = spec.limit
        # Detectors are scored one image at a time, as exports of per-image graphs run and as
        # predict runs: in a batch, torchvision pads every image to the largest one, which
        # changes its detections, so eager and export would not be scored like for like.
        self.batch_size = 1 if self.task.name in ("detection", "instance_segmentation") else 16

    def score(self, module: Any) -> tuple[float, int]:
        """``(primary metric, images scored)``."""
        from visiontl.export.images import batches
        from visiontl.export.verify import evaluate

        count = 0

        def counted() -> Any:
            nonlocal count
            for batch in batches(self.val, self.task, self.batch_size, self.limit):
                count += len(batch)
                yield batch

        metrics = evaluate(module, self.task, self.task.evaluator(self.recipe, self.info), counted())
        return float(metrics.get(self.metric, math.nan)), count


# --------------------------------------------------------------------------- sizes


def state_dict_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's state_dict as ``torch.save`` writes it (the PyTorch weights file)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def published(target: Target) -> dict[str, Any]:
    """The card's first published figure (as a 0-1 fraction), for the chart when nothing is scored."""
    figure = target.card.metrics[0] if target.card is not None and target.card.metrics else None
    if figure is None:
        return {}
    value = figure.value / 100.0 if figure.value > 1.0 else figure.value
    return {"published_metric": f"{figure.name} ({figure.dataset.split(':')[0]}, published)", "published_value": value,
            "published_source": figure.source}


def macs_per_image(target: Target) -> int | None:
    from visiontl.benchmark.harness import count_macs

    h, w = target.preprocessing.input_size
    with torch.no_grad():
        return count_macs(target.model.eval().cpu(), torch.rand(1, 3, h, w))


# --------------------------------------------------------------------------- suite


class Suite:
    """Runs a :class:`SuiteSpec` over targets (see the module docstring)."""

    def __init__(self, spec: SuiteSpec, plugins: Any = None, progress: Callable[[str], None] | None = None) -> None:
        from visiontl.plugin_manager import get_plugins

        self.spec = spec
        self.plugins = plugins or get_plugins()
        self.progress = progress or (lambda message: log.info(message))
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []
        self._calibration_info: dict[str, dict[str, Any]] = {}

    def skip(self, target: str, what: str, reason: str) -> None:
        self.skipped.append({"target": target, "what": what, "reason": reason})
        self.progress(f"  skipped {what}: {reason}")

    def run(self, labels: list[str]) -> SuiteResult:
        from visiontl.benchmark.harness import cpu_name, versions
        from visiontl.benchmark.report import verdicts

        if not labels:
            raise ConfigError("No benchmark targets given.", fix="pass model ids, run directories or checkpoints")
        threads = self.spec.threads or torch.get_num_threads()
        with tempfile.TemporaryDirectory(prefix="visiontl-bench-") as tmp:
            workdir = Path(self.spec.workdir) if self.spec.workdir else Path(tmp)
            for label in labels:
                self._target(label, workdir)
        conditions = {"threads": threads, "device": self.spec.device, "cpu": cpu_name(), "batches": self.spec.batches,
                      "precisions": self.spec.precisions, "formats": [f.name for f in self.spec.formats],
                      "warmup": self.spec.warmup, "min_repeats": self.spec.min_repeats, "min_seconds": self.spec.min_seconds,
                      "data": str(self.spec.data) if self.spec.data else None, "versions": versions()}
        return SuiteResult(self.rows, self.skipped, verdicts(self.rows), conditions)

    # ------------------------------------------------------------------ one target
    def _load(self, label: str) -> list[Target]:
        """The target; a bare model id scored on ``--data`` gets a head for the data's classes."""
        from visiontl.benchmark.targets import find_card
        from visiontl.trained import resolve_task

        spec = self.spec
        class_names = None
        if spec.data is not None and not Path(label).exists() and ":" in label:
            card = find_card(label, self.plugins)
            task_name = spec.task or (card.tasks[0] if card else "classification")
            recipe = _bare_recipe(task_name, label, spec)
            class_names = resolve_task(self.plugins, task_name).inspect(recipe, spec.root()).class_names
        return load_targets(label, self.plugins, task=spec.task, input_size=spec.input_size, num_classes=spec.num_classes,
                           class_names=class_names, pretrained=spec.pretrained)

    def _target(self, label: str, workdir: Path) -> None:
        self.progress(f"{label}: loading")
        for target in self._load(label):
            self._measure(target, workdir)

    def _measure(self, target: Target, workdir: Path) -> None:
        spec = self.spec
        label = target.label
        with _threads(spec.threads):
            macs = macs_per_image(target)
        params = sum(p.numel() for p in target.model.parameters())
        torch_bytes = state_dict_bytes(target.model)
        scorer = Scorer(target, spec, self.plugins) if spec.data is not None else None
        name = label if target.kind == "model id" else Path(label.split("#")[0]).name + (f"#{label.split('#', 1)[1]}" if "#" in label else "")
        base = {"target": label, "name": name, "model_id": target.model_id, "task": target.task, "weights": target.weights,
                "params": params, "macs": macs, "input_size": "x".join(str(s) for s in target.preprocessing.input_size),
                **published(target)}
        if spec.masks is not None:
            base.update(self._mask_score(target))
        for fmt in spec.formats:
            precisions, unsupported = fmt.plan(spec.precisions)
            for precision in unsupported:
                self.skip(label, f"{fmt.name} {precision}", f"{fmt.name} runs {', '.join(fmt.precisions)} only")
            if fmt.cpu_only and spec.device != "cpu":
                for precision in precisions:
                    self.skip(label, f"{fmt.name} {precision}", f"{fmt.name} is measured on the CPU only (device {spec.device})")
                continue
            for precision in precisions:
                self._format(target, fmt, precision, workdir, scorer, base, torch_bytes)

    def _mask_score(self, target: Target) -> dict[str, Any]:
        """Interpretability where ground truth allows it: the share of the target's CAM energy
        inside the object masks (chance level: the masks' share of the image)."""
        from visiontl.data.images import is_image_file
        from visiontl.explain.cam import Explainer
        from visiontl.explain.score import cam_energy_in_mask

        spec = self.spec
        assert spec.masks is not None
        folder = Path(spec.mask_images) if spec.mask_images else Path(spec.masks).parent / "images"
        if not folder.is_dir():
            raise ConfigError(f"No images folder for the masks in '{spec.masks}' (looked for '{folder}').",
                              fix="pass --mask-images DIR")
        images = sorted(p for p in folder.iterdir() if is_image_file(p))[: spec.limit]
        if target.kind in ("run", "checkpoint"):
            source: Any = Path(target.label)
        elif target.built is not None:
            source = Explainer.from_built(target.built, target.class_names, preprocessing=target.preprocessing,
                                          method=spec.cam_method, plugins=self.plugins)
        else:
            self.skip(target.label, "CAM energy in mask", "an ensemble has no layer groups to explain; benchmark its members' runs")
            return {}
        self.progress(f"{target.label}: CAM energy in {spec.masks} ({len(images)} images)")
        try:
            with _threads(spec.threads):
                score = cam_energy_in_mask(source, images, spec.masks, target_class=spec.target_class,
                                           method=None if isinstance(source, Explainer) else spec.cam_method, plugins=self.plugins)
        except VisiontlError as exc:
            self.skip(target.label, "CAM energy in mask", _describe(exc))
            return {}
        if not score.per_image:
            reasons = sorted(set(score.skipped.values()))
            self.skip(target.label, "CAM energy in mask", f"no image could be scored ({'; '.join(reasons) or 'no images'})")
            return {}
        return {"cam_energy_in_mask": score.mean_energy, "cam_chance": score.mean_area,
                "cam_pointing_game": score.pointing_game, "cam_images": len(score.per_image), "cam_method": score.method}

    def _format(self, target: Target, fmt: BenchFormat, precision: str, workdir: Path, scorer: Scorer | None,
                base: dict[str, Any], torch_bytes: int) -> None:
        spec = self.spec
        what = f"{fmt.name} {precision}"
        if fmt.export is None and precision == "fp16" and spec.device == "cpu":
            self.skip(target.label, what, "fp16 autocast needs a CUDA device (use bf16 on the CPU)")
            return
        self.progress(f"{target.label}: {what}")
        try:
            with _threads(spec.threads):
                module, size, runtime, exporter = self._prepare(target, fmt, precision, workdir)
        except VisiontlError as exc:
            self.skip(target.label, what, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - one format failing must not lose the others' rows
            self.skip(target.label, what, f"failed: {_describe(exc)}")
            return
        file_size = torch_bytes if size is None else size
        accuracy: float | None = None
        scored = 0
        if scorer is not None:
            try:
                with _threads(spec.threads):
                    accuracy, scored = scorer.score(module)
            except Exception as exc:  # noqa: BLE001 - e.g. an export traced at batch 1 refusing batch 16
                self.skip(target.label, f"{what} accuracy", f"failed: {_describe(exc)}")
        for batch in spec.batches:
            request = BenchmarkRequest(
                input_size=target.preprocessing.input_size, batch_size=batch, device=spec.device, threads=spec.threads,
                # exports carry their precision inside: the harness must not add an autocast
                precision=precision if fmt.export is None else "fp32",
                warmup=spec.warmup, min_repeats=spec.min_repeats, min_seconds=spec.min_seconds,
            )
            try:
                result = self.plugins.hook.visiontl_benchmark(model=module, built=target.built, request=request)
            except Exception as exc:  # noqa: BLE001 - e.g. a graph with a fixed batch size
                self.skip(target.label, f"{what} batch {batch}", f"failed: {_describe(exc)}")
                continue
            if result is None:
                self.skip(target.label, f"{what} batch {batch}", "no plugin answered visiontl_benchmark")
                continue
            row = {
                **base,
                "format": fmt.name, "precision": precision, "exporter": exporter, "batch": batch,
                "latency_ms_p50": result.latency_ms_p50, "latency_ms_p90": result.latency_ms_p90,
                "throughput_ips": result.throughput_ips, "file_size_mb": file_size / 1e6,
                "peak_memory_mb": result.peak_memory_mb, "peak_memory_kind": result.extras.get("peak_memory_kind"),
                "metric": scorer.metric if scorer else None,
                "higher_is_better": scorer.task.higher_is_better_for(scorer.metric) if scorer else None, "accuracy": accuracy, "accuracy_images": scored or None,
                "threads": result.threads, "device": result.device, "cpu": result.extras.get("cpu"),
                "repeats": result.repeats, "stable": result.extras.get("stable"),
                "latency_ms_mean": result.extras.get("latency_ms_mean"),
                "runtime": runtime, "versions": result.versions, "notes": "; ".join(target.notes),
            }
            self.rows.append(row)
            self.progress(f"  batch {batch}: p50 {row['latency_ms_p50']:.2f} ms, p90 {row['latency_ms_p90']:.2f} ms"
                          + (f", {row['metric']} {accuracy:.4f}" if accuracy is not None else ""))
        del module

    def _prepare(self, target: Target, fmt: BenchFormat, precision: str, workdir: Path) -> tuple[Any, int | None, dict[str, Any], str]:
        """``(module to time, file bytes or None for eager, runtime settings, exporter)``."""
        if fmt.export is None:
            return target.model, None, {"runtime": f"torch {torch.__version__} eager", "autocast": precision}, "-"
        from visiontl.export.contracts import ExportRequest
        from visiontl.export.convert import default_file_name
        from visiontl.export.pipeline import produce

        folder = workdir / _slug(target.label)
        request = ExportRequest(
            format=fmt.export, precision=precision, main_file=folder / default_file_name(target.model_id, fmt.export, precision),
            model_id=target.model_id, task=target.task, class_names=list(target.class_names),
            preprocessing=target.preprocessing, source=target.label,
            calibration=self._calibration(target) if precision == "int8" else None,
        )
        artifact = produce(target.model.eval().cpu(), request, self.plugins)
        module = artifact.load(self.spec.threads)
        size = artifact.manifest.size_bytes(artifact.manifest_path.parent)
        settings = dict(getattr(module, "settings", {}) or getattr(getattr(module, "net", None), "settings", {}) or {})
        if precision == "int8":
            settings["calibration"] = self._calibration_info.get(target.label, {})
        return module, size, settings, artifact.manifest.exporter

    # ------------------------------------------------------------------ calibration
    def _calibration(self, target: Target) -> Callable[[], list[Any]]:
        """int8 calibration batches for ``target``: ``--calib``, else real training images
        (the run's, or ``--data``'s), else random noise (latency only, said so in the row)."""
        cache: dict[str, Any] = {}

        def batches() -> list[Any]:
            if "batches" in cache:
                return cache["batches"]
            from visiontl.export import images
            from visiontl.trained import resolve_task

            if self.spec.calib is not None:
                arrays, info = images.calibration_from_folder(Path(self.spec.calib), target.preprocessing,
                                                              raw=target.task in images.RAW_IMAGE_TASKS,
                                                              resize=target.recipe.data.resize if target.recipe is not None else "auto")
            elif target.recipe is not None or self.spec.data is not None:
                recipe = _data_recipe(target, self.spec) if self.spec.data is not None else target.recipe
                arrays, info = images.calibration_from_run(recipe, resolve_task(self.plugins, target.task), target.preprocessing, self.spec.root())
            else:
                h, w = target.preprocessing.input_size
                g = torch.Generator().manual_seed(0)
                # detectors take RGB in 0..1 (they normalise inside); the others normalised input
                noise = torch.rand if target.task in images.RAW_IMAGE_TASKS else torch.randn
                arrays = [noise(1, 3, h, w, generator=g).numpy() for _ in range(NOISE_CALIBRATION)]
                info = {"source": f"{NOISE_CALIBRATION} random-noise images: no real images given (--data or --calib); "
                                  "the int8 latency holds, its accuracy would not", "images": NOISE_CALIBRATION}
            self._calibration_info[target.label] = info
            cache["batches"] = arrays
            return arrays

        return batches


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else '(no message)'}"


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label.strip("/"))[-80:] or "model"


def _threads(threads: int | None) -> Any:
    from visiontl.train.precision import torch_threads

    return torch_threads(threads)


def run_suite(labels: list[str], spec: SuiteSpec, plugins: Any = None, progress: Callable[[str], None] | None = None) -> SuiteResult:
    """Measure ``labels`` under ``spec`` (see :class:`Suite`).

    Example:
        >>> from visiontl.benchmark.formats import parse_formats  # doctest: +SKIP
        >>> result = run_suite(["timm:resnet18"], SuiteSpec(parse_formats("torch,onnx"), threads=2))  # doctest: +SKIP
        >>> result.verdicts  # doctest: +SKIP
    """
    return Suite(spec, plugins, progress).run(labels)
