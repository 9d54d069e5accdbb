"""The Python API of ``visiontl search``: plan, run, resume, finish.

Example:
    >>> from visiontl.search import api as search  # doctest: +SKIP
    >>> plan = search.plan(task="classification", data="data/hymenoptera_data", target="edge",  # doctest: +SKIP
    ...                    section={"budget": "20m"})
    >>> print("\\n".join(plan.lines()))  # doctest: +SKIP
    >>> result = search.run(plan)  # doctest: +SKIP
    >>> result.best["value"], result.files["best"]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl.errors import ConfigError
from visiontl.search.cost import CostEstimate
from visiontl.search.spec import SPEC_FILE, SearchSpec, default_storage

Say = Callable[[str], None]


@dataclass
class SearchPlan:
    """A search ready to run (what ``--dry-run`` prints).

    Attributes:
        spec: the search.
        cost: its expected cost.
        images: training and validation image counts, when known.
        target: the target's description.
    """

    spec: SearchSpec
    cost: CostEstimate
    images: dict[str, int | None]
    target: str

    def lines(self) -> list[str]:
        spec = self.spec
        settings = spec.settings
        lines = [
            f"search: {spec.task} on target '{settings.target}' ({self.target})",
            f"data: {(spec.base.get('data') or {}).get('root')} ({self.images.get('train') or '?'} training, {self.images.get('val') or '?'} validation images)",
            f"budget: {spec.budget.describe()}; ranked by validation {spec.metric} ({'higher' if spec.higher_is_better else 'lower'} is better)",
            f"sampler: TPE; pruner: {settings.pruner}; backend: {settings.backend}, {settings.workers} worker(s)"
            + (f" on {settings.address}" if settings.address else ""),
            f"folder: {spec.out}; study '{spec.study_name}' in {spec.storage}",
            *spec.space.describe(),
            *(f"why: {n}" for n in spec.space.notes),
            *self.cost.lines(),
        ]
        return lines


@dataclass
class SearchResult:
    """What a finished search wrote.

    Attributes:
        out: the search folder.
        rows: the leaderboard rows.
        best: the chosen row, if any.
        files: ``leaderboard_json``, ``leaderboard_csv``, ``pareto``, ``best`` -> paths (those written).
        table: the printed leaderboard.
        notes: caveats (formats left out, nothing finished ...).
    """

    out: Path
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    files: dict[str, Path] = field(default_factory=dict)
    table: str = ""
    notes: list[str] = field(default_factory=list)


def _base_recipe(task: str | None, data: str | Path | None, recipe: str | Path | None, overrides: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(base recipe dict, its search section)`` from a recipe file and/or --task/--data."""
    from visiontl.config.loader import apply_overrides, read_yaml
    from visiontl.selection.recipe import DATA_FORMATS

    if recipe is not None:
        raw = read_yaml(recipe)
        section = raw.pop("search", None) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"The search section of '{recipe}' must be a mapping.", fix="see docs/search.md")
    else:
        raw, section = {}, {}
        if task is None:
            raise ConfigError("visiontl search needs --task (or --recipe).", fix="e.g. visiontl search --task classification --data DATA")
    if task is not None:
        if recipe is not None and raw.get("task", "classification") != task:
            raise ConfigError(f"--task {task} differs from the recipe's task '{raw.get('task', 'classification')}'.", fix="leave out --task")
        raw["task"] = task
    raw.setdefault("task", "classification")
    if data is not None:
        raw.setdefault("data", {})["root"] = str(Path(data).expanduser().resolve())
    if "data" not in raw or not raw["data"].get("root"):
        raise ConfigError("visiontl search needs --data (or a recipe with data.root).", fix="e.g. --data data/hymenoptera_data")
    if recipe is None and raw["task"] in DATA_FORMATS:
        raw["data"].setdefault("format", DATA_FORMATS[raw["task"]])
    raw = apply_overrides(raw, list(overrides))
    return raw, section


def _data_path(base: dict[str, Any], data_root: Path) -> Path:
    root = Path(str((base.get("data") or {}).get("root", ""))).expanduser()
    return root if root.is_absolute() else data_root / root


def _default_out(task: str, target: str) -> Path:
    parent = Path("runs") / "search"
    name = f"{task}-{target}"
    n = 1
    while (parent / (name if n == 1 else f"{name}-{n}")).exists():
        n += 1
    return (parent / (name if n == 1 else f"{name}-{n}")).resolve()


def plan(*, task: str | None = None, data: str | Path | None = None, recipe: str | Path | None = None, overrides: Sequence[str] = (),
         section: dict[str, Any] | None = None, out: str | Path | None = None, data_root: str | Path | None = None,
         plugins: Any = None) -> SearchPlan:
    """Prepare a search: base recipe, settings, space (from the selection engine), cost.

    Args:
        task: the task (default: the recipe's).
        data: the dataset folder (overrides the recipe's ``data.root``).
        recipe: a base recipe; its ``search:`` section gives default settings.
        overrides: ``a.b=value`` applied to the base recipe.
        section: search settings (:class:`~visiontl.search.section.SearchSection` fields) that
            override the recipe's section.
        out: the search folder (default ``runs/search/<task>-<target>``, numbered if taken).
        data_root: root of relative data paths (default ``$VISIONTL_DATA_DIR`` or ``./data``).
        plugins: the plugin manager.

    Raises:
        ConfigError: missing task or data, an invalid section, no candidate model, an out
            folder that already holds a search.
    """
    from visiontl import env
    from visiontl.plugin_manager import get_plugins
    from visiontl.search.cost import estimate
    from visiontl.search.propose import propose
    from visiontl.search.section import search_section
    from visiontl.selection.targets import get_target
    from visiontl.trained import resolve_task

    plugins = plugins or get_plugins()
    base, recipe_section = _base_recipe(task, data, recipe, overrides)
    settings = search_section({**recipe_section, **{k: v for k, v in (section or {}).items() if v is not None}},
                              f"'{recipe}'" if recipe else "the command line")
    root = Path(data_root).resolve() if data_root else env.data_root()
    adapter = resolve_task(plugins, base["task"])
    metric = (base.get("eval") or {}).get("metric") or adapter.primary_metric
    space = propose(base["task"], base, settings, _data_path(base, root), plugins)
    folder = Path(out).expanduser().resolve() if out else _default_out(base["task"], settings.target)
    if (folder / SPEC_FILE).is_file():
        raise ConfigError(f"'{folder}' already holds a search.", fix=f"continue it with: visiontl search --resume {folder}, or choose another --out")
    section_data = settings.model_dump(mode="json")
    spec = SearchSpec(
        task=base["task"], metric=metric, higher_is_better=bool(adapter.higher_is_better), base=base, section=section_data,
        space=space, out=folder, storage=settings.storage or default_storage(folder), study_name=settings.study_name or folder.name,
        data_root=str(root) if data_root else None, command=list(sys.argv),
    )
    _check_first_trial(spec)
    images = _images(spec, plugins, root)
    if images.get("train"):
        # The task's own scan beats counting files (masks and annotations are files too):
        # the strategy rules are asked again with it.
        spec.space = propose(base["task"], base, settings, None, plugins, _summary(images))
    cost = estimate(space, spec.budget, images.get("train"), images.get("val"), settings.workers)
    return SearchPlan(spec, cost, images, get_target(settings.target).description)


def _first_params(spec: SearchSpec) -> dict[str, Any]:
    """The first trial: the base recipe's own settings when they are a point of the space,
    else the space's first choices (the selection engine's top model, the advised strategy)."""
    space = spec.space
    params = space.base_params(spec.base) if (spec.base.get("model") or {}).get("id") else None
    if params is not None:
        return params
    strategy = space.strategies[len(space.strategies) // 2] if len(space.strategies) == 3 else space.strategies[0]
    lr = (space.lr[0] * space.lr[1]) ** 0.5
    out: dict[str, Any] = {"model": space.candidates[0].key, "strategy": strategy, "lr": lr}
    if strategy != "feature_extraction":
        out["lr_spread"] = space.lr_spread[len(space.lr_spread) // 2]
    out.update(image_size=space.sizes[-1], augmentation=space.augmentations[len(space.augmentations) // 2])
    return out


def _check_first_trial(spec: SearchSpec) -> None:
    """Validate a trial recipe now, so that a bad base recipe fails before any training."""
    from visiontl.search.trial import recipe_for

    recipe_for(spec, 0, _first_params(spec))


def _images(spec: SearchSpec, plugins: Any, root: Path) -> dict[str, int | None]:
    """Training and validation images, from the task's own scan of the data."""
    from visiontl.search.trial import recipe_for
    from visiontl.trained import resolve_task

    try:
        recipe = recipe_for(spec, 0, _first_params(spec))
        info = resolve_task(plugins, spec.task).inspect(recipe, root)
        per_class = info.min_per_class("train") if spec.task == "classification" else None
        return {"train": info.images("train"), "val": info.images("val"), "classes": len(info.class_names), "min_per_class": per_class}
    except Exception as exc:  # noqa: BLE001 - counting is for the estimate; training will report the data's problem
        spec.space.notes.append(f"the data could not be scanned for the estimate: {exc}")
        return {"train": None, "val": None}


def _summary(images: dict[str, int | None]) -> Any:
    from visiontl.selection.engine import DataSummary

    return DataSummary(images.get("train"), images.get("classes"), images.get("min_per_class"), "the task's scan")


def preflight(spec: SearchSpec, plugins: Any, say: Say) -> None:
    """Build every candidate once (weights included) and plan each strategy on it; drop the
    candidates that cannot be built here (e.g. pretrained weights not reachable offline)."""
    from visiontl import api, env
    from visiontl.config.loader import validate_recipe
    from visiontl.freeze.plan import build_plan
    from visiontl.search.space import trial_recipe

    data_root = Path(spec.data_root) if spec.data_root else env.data_root()
    first = _first_params(spec)
    # The data is the same for every candidate: a problem with it stops the search here.
    first_recipe = validate_recipe(trial_recipe(spec.base, first, spec.space, spec.runs_dir, "preflight"), "(preflight)")
    info = api.resolve_task(plugins, spec.task).inspect(first_recipe, data_root)
    kept = []
    for cand in spec.space.candidates:
        params = {**first, "model": cand.key}
        try:
            recipe = validate_recipe(trial_recipe(spec.base, params, spec.space, spec.runs_dir, "preflight"), "(preflight)")
            built = api.build_model(plugins, recipe, info.class_names, data_root)
            groups = api.layer_groups(plugins, built)
            for strategy in spec.space.strategies:
                # Plan each strategy (a progressive plan needs enough groups, a custom lr map
                # must name this model's groups): a trial must not be the first to find out.
                build_plan(groups, recipe.strategy.model_copy(update={"name": strategy, "phase_epochs": None}), recipe.optimizer.lr, spec.space.epochs)
            del built  # one candidate's weights in memory at a time
        except Exception as exc:  # noqa: BLE001 - reported and dropped, the search goes on with the others
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            say(f"candidate {cand.key} dropped: {reason}")
            spec.space.notes.append(f"dropped {cand.key}: {reason}")
            continue
        kept.append(cand)
    if not kept:
        raise ConfigError("No candidate model can be built here (see the lines above).",
                          fix="give --models that build offline (a local weights file: --models ID=WEIGHTS), or check the network")
    spec.space.candidates = kept


def run(target: SearchPlan | SearchSpec, *, plugins: Any = None, say: Say = print) -> SearchResult:
    """Run a planned search to the end of its budget, then finish it (leaderboard, finalists,
    Pareto plot, best.yaml). A fresh search checks its candidates first and queues the base
    recipe's settings as its first trial."""
    from visiontl.plugin_manager import get_plugins
    from visiontl.search import study as studies

    spec = target.spec if isinstance(target, SearchPlan) else target
    plugins = plugins or get_plugins()
    fresh = not (spec.out / SPEC_FILE).is_file()
    if fresh:
        say(f"search folder: {spec.out}")
        preflight(spec, plugins, say)
        spec.out.mkdir(parents=True, exist_ok=True)
        spec.save()
        study = studies.open_study(spec)
        if not study.get_trials(deepcopy=False):
            study.enqueue_trial(_first_params(spec), user_attrs={"first": "base recipe / advised settings"})
    _backend(spec, plugins, say)
    return finish(spec, plugins=plugins, say=say)


def _backend(spec: SearchSpec, plugins: Any, say: Say) -> None:
    try:
        if spec.settings.backend == "ray":
            from visiontl.search.ray_backend import run_ray

            run_ray(spec, say=say)
        else:
            from visiontl.search.local import run_local

            run_local(spec, plugins=plugins, say=say)
    except KeyboardInterrupt:
        say(f"search interrupted; continue it with: visiontl search --resume {spec.out}")
        raise


def resume(folder: str | Path, *, section: dict[str, Any] | None = None, plugins: Any = None, say: Say = print) -> SearchResult:
    """Continue the search in ``folder``: interrupted trials are continued from their last
    checkpoint, finished ones are kept, and the budget (which ``section`` may raise, with
    ``workers``, ``backend``, ``address`` ...) counts what was already spent."""
    from visiontl.search.section import search_section

    spec = SearchSpec.load(Path(folder))
    changes = {k: v for k, v in (section or {}).items() if v is not None}
    fixed = {"models", "top", "strategies", "lr", "lr_spread", "sizes", "augmentations", "epochs", "target"}
    bad = sorted(k for k in changes if k in fixed and changes[k] != spec.section.get(k))
    if bad:
        raise ConfigError(f"--resume keeps the search's space: {', '.join(bad)} cannot change.",
                          fix="start a new search (another --out) to search another space")
    if changes:
        spec.section = search_section({**spec.section, **changes}, f"'{folder}'").model_dump(mode="json")
        spec.save()
    say(f"resuming the search in {spec.out} ({spec.budget.describe()} in all)")
    return run(spec, plugins=plugins, say=say)


def finish(spec: SearchSpec, *, plugins: Any = None, say: Say = print) -> SearchResult:
    """Leaderboard, finalists (exported and timed), Pareto plot and best.yaml of a search."""
    from visiontl.plugin_manager import get_plugins
    from visiontl.search import leaderboard
    from visiontl.search import study as studies
    from visiontl.search.best import write_best
    from visiontl.search.finalists import finalize
    from visiontl.search.plot import plot

    plugins = plugins or get_plugins()
    study = studies.open_study(spec)
    rows = leaderboard.collect(spec, study)
    facts = finalize(spec, rows, plugins, say)
    files: dict[str, Path] = {}
    chosen = next((r for r in rows if r["chosen"]), None)
    if chosen is not None:
        try:
            files["best"] = write_best(spec, chosen)
        except Exception as exc:  # noqa: BLE001 - the leaderboard is still worth writing
            facts["notes"].append(f"best.yaml could not be written: {exc}")
    title = f"visiontl search: {spec.task} for target '{spec.settings.target}' ({spec.out.name})"
    png = plot(rows, spec.metric, facts["deploy_format"], title, spec.out / "pareto.png", spec.higher_is_better)
    if png is not None:
        files["pareto"] = png
    extra = {"deploy_format": facts["deploy_format"], "formats": facts["formats"], "notes": facts["notes"],
             "chosen": facts["chosen"], "spent_s": round(studies.spent_seconds(study), 1),
             "space": spec.space.as_dict()}
    files["leaderboard_json"], files["leaderboard_csv"] = leaderboard.write(spec, copy.deepcopy(rows), extra)
    return SearchResult(spec.out, rows, chosen, files, leaderboard.table(rows, spec.metric), list(facts["notes"]))
