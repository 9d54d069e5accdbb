"""The Python API behind the CLI: ``run``, ``plan``, ``predict``, ``evaluate``.

The click commands parse arguments and print; everything they do is here, callable from
Python with the same behaviour.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl import env, log
from visiontl.config.loader import load_recipe, recipe_to_dict, validate_recipe
from visiontl.config.schema import Recipe
from visiontl.contracts import (
    BuiltModel,
    LayerGroup,
    TrainJob,
    TrainResult,
)
from visiontl.errors import ConfigError, PluginError, RunError
from visiontl.freeze.plan import Plan, build_plan
from visiontl.ids import parse_model_id
from visiontl.plugin_manager import Plugins, get_plugins
from visiontl.tasks.base import DataInfo, TaskAdapter
from visiontl.trained import (  # noqa: F401 - part of the Python API
    LoadedModel,
    build_model,
    build_model_for_card,
    layer_groups,
    load_trained,
    resolve_task,
    tasks,
)


@dataclass
class Prepared:
    """A recipe resolved down to a model, its groups and a plan (what ``--dry-run`` shows)."""

    recipe: Recipe
    task: TaskAdapter
    info: DataInfo
    built: BuiltModel
    groups: list[LayerGroup]
    plan: Plan
    data_root: Path


@dataclass
class RunOutcome:
    """What ``run`` returns: the run directory, the trainer's result and the summary."""

    run_dir: Path
    result: TrainResult
    summary: dict[str, Any]


def prepare(recipe: Recipe, plugins: Plugins | None = None, data_root: Path | None = None, *, fresh: bool = False,
            info: DataInfo | None = None) -> Prepared:
    """Resolve a recipe to task, data, model, groups and plan (no training).

    Args:
        info: the dataset already scanned for this recipe (by the pre-flight check), so it is
            not scanned (and warned about) twice.
    """
    from visiontl.freeze.apply import group_norm_kinds, group_param_counts

    plugins = plugins or get_plugins()
    data_root = data_root or env.data_root()
    task = resolve_task(plugins, recipe.task)
    parse_model_id(recipe.model.id)
    plugins.require_family(parse_model_id(recipe.model.id).family)
    info = info or task.inspect(recipe, data_root)
    _seed_everything(recipe.train.seed)  # new heads and scratch models initialise reproducibly
    built = build_model(plugins, recipe, info.class_names, data_root, fresh=fresh)
    groups = layer_groups(plugins, built)
    plan = build_plan(
        groups,
        recipe.strategy,
        recipe.optimizer.lr,
        recipe.train.epochs,
        group_param_counts(built.model, groups),
        group_norm_kinds(built.model, groups),
    )
    return Prepared(recipe, task, info, built, groups, plan, data_root)


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _fire(plugins: Plugins) -> Any:
    def fire(name: str, **kwargs: Any) -> None:
        getattr(plugins.hook, name)(**kwargs)

    return fire


def run(
    recipe: str | Path | Recipe,
    overrides: list[str] | None = None,
    *,
    plugins: Plugins | None = None,
    data_root: Path | None = None,
) -> RunOutcome:
    """Train a recipe end to end and write its run directory.

    Args:
        recipe: a recipe file or a validated :class:`Recipe`.
        overrides: ``a.b=value`` strings applied to a recipe file.
        plugins: a plugin manager (default: the process-wide one).
        data_root: root of relative data paths (default: ``$VISIONTL_DATA_DIR`` or ``./data``).

    Returns:
        :class:`RunOutcome` with the run directory and summary.

    Example:
        >>> outcome = run("recipes/quickstart.yaml", ["train.epochs=1"])  # doctest: +SKIP
        >>> outcome.summary["best"]["accuracy"]  # doctest: +SKIP
    """
    import yaml

    from visiontl.runs.layout import RunDir

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    if recipe.ensemble is not None:
        # An ensemble combines runs that already exist; training model.id instead would
        # silently ignore the section.
        raise ConfigError(
            "This recipe has an ensemble section: it combines trained runs and has nothing to train.",
            fix="train each member with its own recipe, then use visiontl eval/predict/benchmark/export on this recipe",
        )
    if recipe.export is not None and recipe.export.formats:
        from visiontl.export.pipeline import check_section

        check_section(list(recipe.export.formats), recipe.export.precision)  # fail before training, not after
    plugins = plugins or get_plugins()
    from visiontl.config.preflight import ensure_runnable

    # Every recipe mistake that can be found without training, before any work or run folder.
    data_root = data_root or env.data_root()
    info = ensure_runnable(recipe, plugins, data_root)
    prepared = prepare(recipe, plugins, data_root, info=info)
    # A model name may hold '/' (hub ids); a run name is one folder.
    name = recipe.output.name or parse_model_id(recipe.model.id).name.replace("/", "-").replace("\\", "-")
    ctx = _join_processes(recipe)
    # Under torchrun only rank 0 creates and writes the run directory; the others learn its path.
    run_path = None
    if ctx.is_main:
        run_path = RunDir.create(Path(recipe.output.dir), recipe.task, name).path
    from visiontl.train import distributed

    try:
        if run_path is not None:  # rank 0
            RunDir(run_path).write_text("recipe.yaml", yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
        run_dir = RunDir(distributed.broadcast(run_path, ctx))
        return _train(prepared, plugins, run_dir, resume_from=None)
    except BaseException as exc:
        if run_path is not None:
            _record_failure(RunDir(run_path), exc, fresh=True)
        raise


def _record_failure(run_dir: Any, exc: BaseException, *, fresh: bool) -> None:
    """Leave an honest run directory behind a run that raised.

    A fresh run that failed before its first epoch ended (no checkpoint, no metrics) is
    removed, so that it leaves no orphan folder and the next run takes its name. Otherwise
    the folder is kept, with ``status.json`` saying it failed (or was interrupted), why,
    and how to resume. A run whose summary.json was written finished training: an error after
    that (an export) says so itself, and the folder is left as it is.
    """
    import shutil

    try:
        if run_dir.summary_json.is_file():
            return
        if fresh and not run_dir.has_checkpoint() and not run_dir.metrics_csv.is_file():
            shutil.rmtree(run_dir.path, ignore_errors=True)
            log.info(f"removed {run_dir.path}: the run failed before its first epoch ended")
            return
        status: dict[str, Any] = {
            "status": "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "time": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        if run_dir.last.is_file():
            status["resume"] = f"visiontl run --resume {run_dir.path}"
        run_dir.write_json("status.json", status)
    except OSError as cleanup_error:  # never hide the run's own error behind this one
        log.warning(f"could not record the failure of {run_dir.path}: {cleanup_error}")


def _join_processes(recipe: Recipe) -> Any:
    """The distributed context (joined now when launched by torchrun)."""
    from visiontl.train import distributed
    from visiontl.train.precision import resolve_device

    ctx = distributed.from_env()
    if ctx.enabled:
        distributed.init(ctx, distributed.device_for(ctx, resolve_device(recipe.train.device)))
    return ctx


def resume(run_path: str | Path, *, plugins: Plugins | None = None, data_root: Path | None = None) -> RunOutcome:
    """Continue an interrupted run from its ``last.pt``, in the same directory."""
    import yaml

    from visiontl.runs.layout import RunDir
    from visiontl.train.checkpoint import load_checkpoint

    run_dir = RunDir.open(Path(run_path))
    from visiontl.train import distributed

    main = distributed.from_env().is_main
    if main:
        for tmp in run_dir.remove_temp_files():
            log.info(f"removed {tmp}, left by an interrupted write")
    if not run_dir.last.is_file():
        raise RunError(f"Run '{run_path}' has no checkpoints/last.pt to resume from.", fix="start it again with: visiontl run RECIPE")
    recipe = validate_recipe(yaml.safe_load((run_dir.path / "recipe.yaml").read_text()), f"'{run_dir.path / 'recipe.yaml'}'")
    plugins = plugins or get_plugins()
    prepared = prepare(recipe, plugins, data_root, fresh=True)
    _join_processes(recipe)
    from visiontl.contracts import WeightsReport

    ckpt = load_checkpoint(run_dir.last)
    saved = ckpt.get("weights")
    if saved:
        prepared.built.weights = WeightsReport(**saved)
    try:
        outcome = _train(prepared, plugins, run_dir, resume_from=run_dir.last, started=_original_start(ckpt, run_dir))
    except BaseException as exc:
        if main:
            _record_failure(run_dir, exc, fresh=False)
        raise
    if main:
        run_dir.status_json.unlink(missing_ok=True)  # it finished now
    return outcome


def _original_start(ckpt: dict[str, Any], run_dir: Any) -> dt.datetime:
    """When an interrupted run first started: stored in its checkpoint by the training loop,
    else (older checkpoints, trainers that do not store it) when its recipe.yaml was written."""
    loop = (ckpt.get("train_state") or {}).get("loop") or {}
    stored = loop.get("started") if isinstance(loop, dict) else None
    if isinstance(stored, str):
        try:
            return dt.datetime.fromisoformat(stored)
        except ValueError:
            pass
    mtime = (run_dir.path / "recipe.yaml").stat().st_mtime
    return dt.datetime.fromtimestamp(mtime).astimezone()


def _train(prepared: Prepared, plugins: Plugins, run_dir: Any, resume_from: Path | None, started: dt.datetime | None = None) -> RunOutcome:
    from visiontl.runs.plots import plot_curves
    from visiontl.runs.report import build_summary, write_report
    from visiontl.train import distributed

    main = distributed.from_env().is_main
    if main:
        run_dir.write_json("plan.json", prepared.plan.to_dict())
        run_dir.write_text("plan.txt", prepared.plan.table() + "\n")
        for path, reason in prepared.info.skipped.items():
            log.warning(f"skipped {path}: {reason}")
    job = TrainJob(
        recipe=prepared.recipe,
        built=prepared.built,
        groups=prepared.groups,
        plan=prepared.plan,
        task=prepared.task,
        data_info=prepared.info,
        run=run_dir,
        data_root=prepared.data_root,
        resume_from=resume_from,
        fire=_fire(plugins),
    )
    started = started or dt.datetime.now().astimezone()
    run_dir.started = started  # the loop stores it in checkpoints: a resumed run keeps it
    if main:
        plugins.hook.visiontl_on_run_start(run=run_dir, recipe=prepared.recipe)
    with _threads(prepared.recipe.train.threads):
        result = plugins.hook.visiontl_train(job=job)
    if result is None:
        raise PluginError(f"No plugin trained '{prepared.built.model_id}'.")
    summary = build_summary(job, result, started, dt.datetime.now().astimezone())
    if main:
        test = score_test(prepared, plugins, run_dir)
        if test is not None:
            summary["test"] = test
        run_dir.write_json("summary.json", summary)
        plots: list[Path] = []
        if prepared.recipe.output.plots and result.history:
            plots.append(plot_curves(result.history, result.primary_metric, run_dir.path / "curves.png"))
            plots += prepared.task.plots(result.final_metrics, prepared.info, run_dir.path)
        write_report(run_dir, summary, prepared.task.report_lines(result.final_metrics, prepared.info), plots, prepared.task.report_heading)
        _export_section(prepared, plugins, run_dir)
        if prepared.recipe.export and prepared.recipe.export.formats:
            summary = json.loads((run_dir.path / "summary.json").read_text())
        plugins.hook.visiontl_on_run_end(run=run_dir, summary=summary)
    return RunOutcome(run_dir.path, result, summary)


def _export_section(prepared: Prepared, plugins: Plugins, run_dir: Any) -> None:
    """Export and verify the best checkpoint as the recipe's ``export:`` section asks.

    The exports are recorded in the run's ``summary.json`` and ``report.md`` by the export
    pipeline itself, exactly as ``visiontl export RUN`` would.
    """
    section = prepared.recipe.export
    if section is None or not section.formats:
        return
    from visiontl.errors import VisiontlError
    from visiontl.export.pipeline import export_section

    try:
        reports = export_section(run_dir.path, list(section.formats), section.precision, section.calib,
                                 data_root=prepared.data_root, threads=prepared.recipe.train.threads, plugins=plugins)
    except VisiontlError as exc:
        # The trained run is complete on disk: say so, so that only the export is redone.
        raise RunError(f"The run finished ({run_dir.path}) but its export failed: {exc.message}",
                       fix=f"{exc.fix + '; then ' if exc.fix else ''}visiontl export {run_dir.path} --format ...") from exc
    for report in reports:
        verdict = "passed" if report.passed else "FAILED"
        log.info(f"export {report.manifest.format}-{report.manifest.precision}: verification {verdict}")


def _threads(threads: int | None) -> Any:
    from visiontl.train.precision import torch_threads

    return torch_threads(threads)


# --------------------------------------------------------------------------- inference


@dataclass
class Prediction:
    """A prediction for one image file (or the reason it could not be read).

    Attributes:
        path: the image file.
        top: ``(class name, score)`` pairs, best first (top-k classes, or one per object).
        details: task-specific data (boxes, mask areas ...).
        overlay: the PNG drawn for it, if any.
        error: why the file could not be read.
        score: what each number of ``top`` is: ``probability``, ``score`` (an object's
            confidence) or ``area`` (the fraction of the image's pixels, segmentation).
    """

    path: str
    top: list[tuple[str, float]]
    details: dict[str, Any] = field(default_factory=dict)
    overlay: str | None = None
    error: str | None = None
    score: str = "probability"


def predict(
    target: str | Path,
    images: list[str | Path],
    topk: int = 5,
    *,
    score_threshold: float | None = None,
    out_dir: str | Path | None = None,
    plugins: Plugins | None = None,
) -> list[Prediction]:
    """Predict images with a trained run or checkpoint.

    Folders are expanded to the images inside them; unreadable files get an ``error``.
    Tasks that draw (boxes, masks) write overlays when ``out_dir`` is given, at
    ``<out_dir>/<path relative to the inputs' common folder>.png`` with the image's own
    extension kept (``a/y.jpg`` -> ``<out_dir>/a/y.jpg.png``): two images never share one.

    Args:
        score_threshold: lowest score kept for objects (default: the recipe's eval.score_threshold).

    Raises:
        DataError: no image at all in ``images`` (empty folders, no image extension).
    """
    from visiontl.data.images import UnreadableImage, image_files, load_rgb, overlay_names

    plugins = plugins or get_plugins()
    loaded = load_trained(target, plugins)
    task = resolve_task(plugins, loaded.task)
    threshold = loaded.recipe.eval.score_threshold if score_threshold is None else score_threshold
    files = image_files(images)
    overlays = overlay_names(images, files)
    out: list[Prediction] = []
    for f in files:
        try:
            image = load_rgb(f)
        except UnreadableImage as exc:
            out.append(Prediction(str(f), [], error=str(exc)))
            continue
        result = task.predict(loaded.model, image, loaded.preprocessing, loaded.class_names, topk=topk, score_threshold=threshold, recipe=loaded.recipe)
        prediction = Prediction(str(f), result.labels, result.details, score=result.score)
        if out_dir is not None:
            overlay = task.draw(image, result, loaded.class_names)
            if overlay is not None:
                path = Path(out_dir) / overlays[f]
                path.parent.mkdir(parents=True, exist_ok=True)
                overlay.save(path)
                prediction.overlay = str(path)
        out.append(prediction)
    return out


def evaluate(
    target: str | Path,
    overrides: list[str] | None = None,
    plugins: Plugins | None = None,
    data_root: Path | None = None,
    *,
    split: str = "val",
    images: str | Path | None = None,
    labels: str | Path | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Evaluate a trained run or checkpoint (or an ensemble recipe) on one split.

    Which data: the recipe's validation split (``split="val"``, the default), its test split
    (``split="test"``: ``data.test``, scanned alone), or explicit folders (``images`` with
    ``labels``: a mask folder, a COCO JSON, a CSV; see :meth:`TaskAdapter.explicit_split`),
    which replace every split key of the stored recipe. The result says what was scored
    under ``scored`` (checkpoint, epoch, split, image count, folder, labels; see
    :func:`visiontl.scoring.scored_split`).

    For an ensemble, every member is evaluated on the same batches: the result also holds
    ``members`` (one row per member: name, source, model id, weight, scalar metrics) and
    ``<metric>@<member>`` keys with each member's primary metric.

    A warning names each split whose files differ (count or hash) from those the model was
    trained with, when the checkpoint recorded them.

    Args:
        overrides: ``a.b=value`` applied to the stored recipe (e.g. ``data.val=test``); for an
            ensemble recipe, applied to it before its members are loaded (so
            ``ensemble.members=[...]`` may name other runs).
        split: ``val`` or ``test``.
        images, labels: explicit folders to score (the test split of a rewritten recipe).
        threads: torch CPU threads (default: the recipe's ``train.threads``).

    Raises:
        ConfigError: conflicting split keys, no such split, labels that do not fit the task.
        RunError: the classes differ from the model's, or a metric is NaN or infinite (the
            model's outputs are not finite, or nothing could be scored).
    """
    from visiontl.config.loader import apply_overrides
    from visiontl.scoring import explicit_recipe, score_dataset, scored_split

    plugins = plugins or get_plugins()
    if Path(target).suffix.lower() in (".yaml", ".yml"):
        from visiontl.ensemble import load_ensemble

        # An ensemble recipe takes the overrides itself (ensemble.members=[...] included).
        loaded = load_ensemble(Path(target), plugins, overrides)
        recipe = loaded.recipe
    else:
        loaded = load_trained(target, plugins)
        recipe = validate_recipe(apply_overrides(recipe_to_dict(loaded.recipe), overrides or []), "(stored recipe with overrides)")
    if split not in ("val", "test"):
        raise ConfigError(f"Unknown split '{split}'.", fix="use val or test")
    task = resolve_task(plugins, recipe.task)
    root = data_root or env.data_root()
    if images is not None:
        recipe = explicit_recipe(recipe, task, Path(images), Path(labels) if labels is not None else None)
        split = "test"
    elif labels is not None:
        raise ConfigError("--masks/--labels need --images: the folder of the images they label.", fix="visiontl eval RUN --images DIR --masks DIR")
    with _threads(threads or recipe.train.threads):
        if split == "test":
            info = task.inspect_test(recipe, root, loaded.class_names)
        else:
            info = task.inspect(recipe, root)
        if info.class_names != loaded.class_names:
            raise RunError(f"The dataset's classes {info.class_names} differ from the model's {loaded.class_names}.")
        if images is None:  # explicit folders are other data on purpose
            for change in provenance_changes(loaded.data_provenance, info.provenance):
                log.warning(change)
        dataset = task.eval_dataset(recipe, info, loaded.preprocessing, root, split)
        metrics, skipped = score_dataset(task, recipe, info, loaded, dataset)
    _check_finite(metrics, loaded)
    metrics["scored"] = scored_split(loaded, info, split, unreadable=len(skipped))
    if images is not None:
        metrics["scored"]["split"] = "explicit"  # --images: no split of the recipe
    metrics["skipped"] = {**info.skipped, **skipped}
    return metrics


def score_test(prepared: Prepared, plugins: Plugins, run_dir: Any) -> dict[str, Any] | None:
    """Score the recipe's test split once, with the run's best checkpoint (as ``visiontl eval
    RUN --split test`` would), after training: the test split never takes part in choosing
    the best epoch or stopping early. Without checkpoints (``output.checkpoints: false``) the
    final weights in memory are scored, and the record says so.

    Returns:
        ``None`` without a test split; else the scalar metrics with ``scored`` (what was
        scored) and ``details`` (the task's tables).
    """
    from visiontl.scoring import score_dataset, scored_split
    from visiontl.train.precision import resolve_device

    if "test" not in prepared.info.counts:
        return None
    recipe = prepared.recipe
    if run_dir.best.is_file():
        loaded = load_trained(run_dir.best, plugins)
    else:
        built = prepared.built
        loaded = LoadedModel(built.model.eval(), str(built.model_id), recipe.task, list(prepared.info.class_names), built.preprocessing,
                             recipe, Path("(final weights: output.checkpoints is off)"), built)
    dataset = prepared.task.eval_dataset(recipe, prepared.info, loaded.preprocessing, prepared.data_root, "test")
    with _threads(recipe.train.threads):
        metrics, skipped = score_dataset(prepared.task, recipe, prepared.info, loaded, dataset,
                                         device=resolve_device(recipe.train.device), precision=recipe.train.precision)
    for path, reason in skipped.items():
        log.warning(f"skipped unreadable test image {path}: {reason}")
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
    details = {k: v for k, v in metrics.items() if k not in scalars}
    return {**scalars, "scored": scored_split(loaded, prepared.info, "test", unreadable=len(skipped)), "details": details}


def _check_finite(metrics: dict[str, Any], loaded: LoadedModel) -> None:
    """Refuse NaN/Inf metrics: they mean the numbers are not a measurement."""
    from visiontl.train.checkpoint import non_finite_scalars

    bad = non_finite_scalars(metrics)
    if bad:
        values = ", ".join(f"{k}={metrics[k]}" for k in bad)
        raise RunError(
            f"Evaluating '{loaded.checkpoint}' gave non-finite metrics ({values}): the model's outputs are not "
            "finite numbers, or the validation data had nothing to score.",
            fix="check the validation data (data.val), or use the run's other checkpoint, or train again",
        )


def provenance_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One line per split whose file count or hash differs between a model's recorded data
    provenance and the current dataset's (splits missing on either side are not compared).

    Example:
        >>> provenance_changes({"splits": {"val": {"files": 3, "sha256": "aa"}}},
        ...                    {"splits": {"val": {"files": 2, "sha256": "bb"}}})
        ["data split 'val' differs from the one the model was trained with: files 3 -> 2, sha256 aa -> bb"]
    """
    old_splits = (stored or {}).get("splits") or {}
    new_splits = (current or {}).get("splits") or {}
    lines = []
    for split in sorted(set(old_splits) & set(new_splits)):
        old, new = old_splits[split] or {}, new_splits[split] or {}
        diffs = [f"{key} {old.get(key)} -> {new.get(key)}" for key in ("files", "sha256") if key in old and key in new and old[key] != new[key]]
        if diffs:
            where = f" (trained on {old.get('path')}, now {new.get('path')})" if old.get("path") != new.get("path") else ""
            lines.append(f"data split '{split}' differs from the one the model was trained with: {', '.join(diffs)}{where}")
    return lines
