"""Checks that a recipe can run, made before any work (``visiontl config validate``, ``run``).

The schema (:mod:`visiontl.config.schema`) checks each value on its own. What needs the
installed plugins or the data is checked here, without building a model or training:

* the task is one an installed plugin defines;
* the model id's family is served, and its name is one the family's plugin lists
  (``visiontl_model_names``), for the recipe's task, with did-you-mean;
* ``model.weights``, ``data.root`` (and the data root it is relative to) and the path options
  set under it exist; the task scans the dataset (``TaskAdapter.inspect``) and its loss takes
  the recipe's loss settings;
* ``data.format`` is one the task reads, and ``eval.metric`` one its evaluator reports
  (``TaskAdapter.metric_names``, or a lower-is-better metric it declares such as ``val_loss``:
  the best epoch then takes the lowest value);
* ``train.device`` and ``train.precision`` are available here, the export section's
  formats take its precision, and distillation teachers exist.

Every problem is gathered (one scan finds them all), each with the recipe field at fault.

Example:
    >>> from visiontl.config.loader import load_recipe
    >>> recipe = load_recipe("recipes/quickstart.yaml", ["eval.metric=acc"])  # doctest: +SKIP
    >>> [str(p) for p in check_runnable(recipe)]  # doctest: +SKIP
    ["eval.metric 'acc' is not a metric of task 'classification'. Did you mean 'accuracy'? ..."]
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError, DataError, RunError, VisiontlError

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.config.schema import Recipe
    from visiontl.plugin_manager import Plugins
    from visiontl.tasks.base import DataInfo, TaskAdapter


@dataclass(frozen=True)
class Problem:
    """One reason a recipe cannot run.

    Attributes:
        field: the recipe option at fault (``eval.metric``, ``data.root``, ``model.id``).
        error: the error that says what is wrong and how to fix it; its class is the one the
            run would have raised (``DataError``, ``UnknownModelError``, ``ConfigError`` ...).
    """

    field: str
    error: VisiontlError

    def __str__(self) -> str:
        return str(self.located())

    def located(self) -> VisiontlError:
        """The error, its message led by ``field`` unless the message names it already."""
        if self.field in self.error.message:
            return self.error
        located = copy.copy(self.error)
        located.message = f"{self.field}: {self.error.message}"
        located.args = (located.message,)
        return located


@dataclass
class PreflightReport:
    """What :func:`preflight` found.

    Attributes:
        problems: every problem, in recipe order (task, model, data, loss, metric, run).
        info: the scanned dataset, when the data was scanned without problems.
    """

    problems: list[Problem] = field(default_factory=list)
    info: DataInfo | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self, source: str = "The recipe") -> None:
        """Raise the problems as one error (one line in the CLI), if there are any.

        One problem is raised as its own error (same class, same fix), its message led by
        the field when it does not name it already. Several are joined into one error of
        their common class (``ConfigError`` when they differ).
        """
        if not self.problems:
            return
        if len(self.problems) == 1:
            raise self.problems[0].located()
        kinds = {type(p.error) for p in self.problems}
        cls = kinds.pop() if len(kinds) == 1 else ConfigError
        parts = [p.located().message + (f" (fix: {p.error.fix})" if p.error.fix else "") for p in self.problems]
        raise cls(
            f"{source} cannot run: {len(parts)} problems: " + " | ".join(parts),
            fix="correct each of them, then check again with: visiontl config validate RECIPE",
        )


def preflight(
    recipe: Recipe,
    plugins: Plugins | None = None,
    data_root: Path | None = None,
    *,
    scan_data: bool = True,
) -> PreflightReport:
    """Check everything about ``recipe`` that can be checked without building or training.

    Args:
        recipe: a validated recipe.
        plugins: the plugin manager (default: the process-wide one).
        data_root: root of relative data and weight paths (default: ``$VISIONTL_DATA_DIR``
            or ``./data``).
        scan_data: scan the dataset with the task's ``inspect`` (and check the loss against
            it). ``False`` checks only that the dataset's paths exist, for callers that scan it
            next anyway.

    Returns:
        A :class:`PreflightReport` with every problem found (none: the recipe can run).
    """
    from visiontl import env
    from visiontl.plugin_manager import get_plugins

    plugins = plugins or get_plugins()
    data_root = data_root or env.data_root()
    report = PreflightReport()
    task = _resolve_task(recipe, plugins, report)
    report.problems += _check_model(recipe, plugins, task_known=task is not None)
    report.problems += _guard("model.weights", lambda: _check_weights(recipe, data_root))
    if task is not None:
        report.problems += _check_format(recipe, task)
    paths = _check_data_paths(recipe, data_root)
    report.problems += paths
    data_ready = not paths and not _will_synthesize(recipe, data_root)
    if task is not None and scan_data and data_ready and not any(p.field == "data.format" for p in report.problems):
        before = len(report.problems)
        report.info = _scan(recipe, task, data_root, report)
        if report.info is not None and len(report.problems) == before:
            report.problems += _guard("loss", lambda: _check_loss(recipe, task, report.info))
            report.problems += _check_test_split(recipe, task, report.info)
    if task is not None:
        report.problems += _check_metric(recipe, task, report.info)
    report.problems += _check_device(recipe)
    report.problems += _check_export(recipe)
    report.problems += _check_distill(recipe)
    return report


def check_runnable(
    recipe: Recipe,
    plugins: Plugins | None = None,
    data_root: Path | None = None,
    *,
    scan_data: bool = True,
) -> list[Problem]:
    """Every reason ``recipe`` cannot run here (empty: it can). See :func:`preflight`."""
    return preflight(recipe, plugins, data_root, scan_data=scan_data).problems


def ensure_runnable(
    recipe: Recipe,
    plugins: Plugins | None = None,
    data_root: Path | None = None,
    *,
    scan_data: bool = True,
    source: str = "The recipe",
) -> DataInfo | None:
    """Raise one error naming every problem :func:`check_runnable` finds.

    Returns:
        The scanned dataset (``None`` when not scanned).

    Raises:
        VisiontlError: the one problem's own error, or one error listing several.
    """
    report = preflight(recipe, plugins, data_root, scan_data=scan_data)
    report.raise_for_problems(source)
    return report.info


# --------------------------------------------------------------------------- helpers


def _guard(field_path: str, check: Callable[[], object]) -> list[Problem]:
    """Run ``check``; a :class:`VisiontlError` it raises becomes a problem at ``field_path``."""
    try:
        check()
    except VisiontlError as exc:
        return [Problem(field_path, exc)]
    return []


def _resolve_task(recipe: Recipe, plugins: Plugins, report: PreflightReport) -> TaskAdapter | None:
    from visiontl.trained import resolve_task

    try:
        return resolve_task(plugins, recipe.task)
    except VisiontlError as exc:
        report.problems.append(Problem("task", exc))
        return None


# --------------------------------------------------------------------------- model


def _check_model(recipe: Recipe, plugins: Plugins, *, task_known: bool = True) -> list[Problem]:
    from visiontl.ids import parse_model_id, unknown_model

    try:
        model_id = parse_model_id(recipe.model.id)
        plugins.require_family(model_id.family)
    except VisiontlError as exc:
        return [Problem("model.id", exc)]
    every = plugins.hook.visiontl_model_names(family=model_id.family, task=None)
    if not every:
        return []  # the plugin cannot say which names it builds: its build will
    for_task = plugins.hook.visiontl_model_names(family=model_id.family, task=recipe.task) if task_known else None
    if not _listed(model_id.name, every):
        return [Problem("model.id", unknown_model(model_id, for_task or every))]
    if for_task is None or _listed(model_id.name, for_task):
        return []
    listing = f"visiontl models --family {model_id.family} --task {recipe.task} --all"
    if not for_task and _provides_output(plugins, model_id.family, recipe.task):
        return []  # the family builds the task's output for any task: its build decides
    if not for_task:
        served = ", ".join(sorted(plugins.require_family(model_id.family).tasks)) or "other tasks"
        return [Problem("model.id", ConfigError(
            f"Family '{model_id.family}' has no models for task '{recipe.task}' (it serves {served}).",
            fix=f"pick a model of a family that serves {recipe.task} (see: visiontl models --task {recipe.task})",
        ))]
    return [Problem("model.id", ConfigError(
        f"'{model_id}' is not a model for task '{recipe.task}'.",
        fix=f"pick one that is; list them with: {listing}",
    ))]


def _provides_output(plugins: Plugins, family: str, task: str) -> bool:
    """Whether ``family`` declares the output contract ``task`` needs (``PluginInfo.outputs``)."""
    from visiontl.tasks.registry import output_of

    output = output_of(task, plugins=plugins)
    return bool(output) and family in plugins.families_providing(output)


def _listed(name: str, names: Sequence[str]) -> bool:
    """Whether a plugin's listing covers ``name``.

    Besides the names themselves, a listing covers ``<listed>.<tag>`` (a pretrained tag, as
    in ``timm:resnet50.a1_in1k``), and a name that differs from a listed one only after its
    second-to-last ``-`` part with at least two parts before (a listing gives one example of an
    open-ended slot, as ``smp:unet-tu-efficientnet_b0`` stands for every ``unet-tu-<timm model>``);
    the plugin's build decides those.
    """
    known = set(names)
    if name in known or name.split(".", 1)[0] in known:
        return True
    stem, sep, _ = name.rpartition("-")
    if sep and stem.count("-") >= 1:
        return any(n.startswith(stem + "-") for n in known)
    return False


def _check_weights(recipe: Recipe, data_root: Path) -> None:
    if recipe.model.weights:
        from visiontl.weights import resolve_weights_path

        resolve_weights_path(recipe.model.weights, data_root)


# --------------------------------------------------------------------------- data


def _check_format(recipe: Recipe, task: TaskAdapter) -> list[Problem]:
    from visiontl.ids import suggest

    if not task.formats or recipe.data.format in task.formats:
        return []
    close = suggest(recipe.data.format, task.formats, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return [Problem("data.format", ConfigError(
        f"data.format '{recipe.data.format}' is not a format of task '{task.name}'.{hint}",
        fix=f"use one of: {', '.join(task.formats)}",
    ))]


def _will_synthesize(recipe: Recipe, data_root: Path) -> bool:
    """A missing dataset that the run generates (``data.synthesize``): nothing to scan yet."""
    from visiontl.data.paths import resolve_data_path

    return bool(recipe.data.synthesize) and not resolve_data_path(recipe.data.root, data_root, must_exist=False).exists()


#: Path options resolved under ``data.root``, checked when set (``test`` names a data yaml's
#: entry for format yolo, not a path: the scan checks it).
_UNDER_ROOT = ("images", "masks", "val_images", "val_masks", "yaml", "test", "test_images", "test_masks")


def _check_data_paths(recipe: Recipe, data_root: Path) -> list[Problem]:
    """``data.root`` and the path options under it exist (resolved as the run resolves them:
    :func:`visiontl.data.paths.resolve_data_path`)."""
    from visiontl.data.paths import resolve_data_path

    data = recipe.data
    if _will_synthesize(recipe, data_root):
        return []
    try:
        root = resolve_data_path(data.root, data_root, what="data.root")
    except DataError as exc:
        if not Path(data.root).expanduser().is_absolute() and not data_root.is_dir():
            exc = DataError(f"{exc.message} The data root {data_root} does not exist.", fix=exc.fix)
        return [Problem("data.root", exc)]
    if not root.is_dir():
        return [Problem("data.root", DataError(f"data.root '{data.root}' is a file ({root}), not a folder.", fix="set data.root to the dataset's folder"))]
    problems = []
    for name in _UNDER_ROOT:
        value = getattr(data, name)
        if name == "test" and data.format == "yolo":
            continue
        if value and not (root / value).exists():
            problems.append(Problem(f"data.{name}", DataError(
                f"data.{name} '{value}' does not exist under data.root ({root / value}).",
                fix=f"set data.{name} to a path under {root}, or remove it",
            )))
    if data.image_root:
        problems += _guard("data.image_root", lambda: resolve_data_path(str(data.image_root), data_root, what="data.image_root"))
    return problems


def _scan(recipe: Recipe, task: TaskAdapter, data_root: Path, report: PreflightReport) -> DataInfo | None:
    """The task's own scan; its errors (and unreadable files or folders) become problems."""
    try:
        return task.inspect(recipe, data_root)
    except VisiontlError as exc:
        report.problems.append(Problem("data", exc))
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        report.problems.append(Problem("data", DataError(
            f"Reading the dataset failed{where}: {exc.strerror or exc}.",
            fix="check that data.root and its files are readable",
        )))
    return None


def _check_test_split(recipe: Recipe, task: TaskAdapter, info: DataInfo) -> list[Problem]:
    """``data.test`` set for a task whose scan ignores it would be a test split never scored."""
    if not recipe.data.test or "test" in info.counts:
        return []
    return [Problem("data.test", ConfigError(
        f"data.test is set, but task '{task.name}' reads no test split (its inspect found none): it would never be scored.",
        fix="remove data.test, and score other data after training with: visiontl eval RUN --data PATH",
    ))]


def _check_loss(recipe: Recipe, task: TaskAdapter, info: DataInfo | None) -> None:
    if info is not None:
        task.loss_function(recipe, info)


# --------------------------------------------------------------------------- metric


#: Placeholders a task's ``metric_names`` may hold, filled from the recipe and the scan:
#: ``<topk>`` is ``eval.topk`` capped at the number of classes; ``<class>`` a class name in
#: metric-key form (:func:`visiontl.metrics.segmentation.metric_key`: ``iou_<class>``).
#: Any other ``<...>`` matches any text.
_PLACEHOLDER = re.compile(r"(<[^>]+>)")


def _fillings(recipe: Recipe, info: DataInfo | None) -> dict[str, list[str]]:
    """What each placeholder can be for this recipe (absent: anything)."""
    if info is None:
        return {"<topk>": [str(k) for k in range(1, recipe.eval.topk + 1)]}
    from visiontl.metrics.segmentation import metric_key

    return {
        "<topk>": [str(min(recipe.eval.topk, max(1, info.num_classes)))],
        "<class>": [metric_key(name) for name in info.class_names],
    }


def _metric_pattern(name: str, fillings: dict[str, list[str]]) -> re.Pattern[str]:
    """A declared metric name as a regex, its placeholders filled where known."""
    out = []
    for part in _PLACEHOLDER.split(name):
        if part in fillings:
            out.append("(" + "|".join(re.escape(v) for v in fillings[part]) + ")")
        elif _PLACEHOLDER.fullmatch(part):
            out.append(".+")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "$")


def _expand(name: str, fillings: dict[str, list[str]]) -> list[str]:
    """Every concrete name a declared one stands for (itself when a placeholder is open)."""
    names = [name]
    for placeholder, values in fillings.items():
        if len(values) == 1 or placeholder == "<class>":
            names = [n.replace(placeholder, v) for n in names for v in values] if placeholder in name else names
    return names


def _check_metric(recipe: Recipe, task: TaskAdapter, info: DataInfo | None) -> list[Problem]:
    from visiontl.ids import suggest

    metric = recipe.eval.metric
    names: tuple[str, ...] = tuple(getattr(task, "metric_names", ()) or ())
    if metric is None or not names:
        return []
    # A metric whose direction the task declares (val_loss, an error) is one it reports: the
    # best epoch, early stopping and a plateau scheduler take its direction from the task.
    declared = (*names, *(n for n in getattr(task, "lower_is_better_metrics", ()) if n not in names))
    fillings = _fillings(recipe, info)
    if any(_metric_pattern(name, fillings).match(metric) for name in declared):
        return []
    concrete = [n for name in declared for n in _expand(name, fillings) if "<" not in n]
    wanted = metric.lower()
    close = suggest(metric, concrete, n=1) or sorted((n for n in concrete if n.startswith(wanted) or wanted in n), key=len)[:1]
    hint = f" Did you mean '{close[0]}'?" if close else ""
    shown = [n if "<class>" in n else _expand(n, fillings)[0] for n in declared]
    default = f" (the default is '{task.primary_metric}')" if task.primary_metric else ""
    return [Problem("eval.metric", ConfigError(
        f"eval.metric '{metric}' is not a metric of task '{task.name}'.{hint} Valid: {', '.join(shown)}{default}.",
        fix="set eval.metric to one of them, or remove it to use the task's default",
    ))]


# --------------------------------------------------------------------------- run settings


def _check_device(recipe: Recipe) -> list[Problem]:
    from visiontl.train.precision import check_precision, resolve_device

    try:
        device = resolve_device(recipe.train.device)
    except VisiontlError as exc:
        return [Problem("train.device", exc)]
    return _guard("train.precision", lambda: check_precision(recipe.train.precision, device))


def _check_export(recipe: Recipe) -> list[Problem]:
    section = recipe.export
    if section is None or not section.formats:
        return []
    from visiontl.export.pipeline import check_section

    return _guard("export.precision", lambda: check_section(list(section.formats), section.precision))


def _check_distill(recipe: Recipe) -> list[Problem]:
    section = recipe.distill
    if section is None:
        return []
    if recipe.task != "classification":
        return [Problem("distill", ConfigError(
            f"distill is available for classification, not '{recipe.task}'.", fix="remove the distill section",
        ))]
    named: list[tuple[str, Any]] = [("distill.teacher", section.teacher)] if section.teacher else []
    if section.ensemble is not None:
        named += [(f"distill.ensemble.members.{i}", m) for i, m in enumerate(section.ensemble.members)]
    return [
        Problem(where, RunError(f"Teacher '{path}' does not exist.", fix="give a trained run directory or checkpoint (relative to the working directory)"))
        for where, path in named
        if not Path(path).expanduser().exists()
    ]
