"""Rebuilding models for the task a recipe names: the tasks the plugins define, a recipe's
model and its layer groups, and a trained run (or checkpoint, or ensemble) loaded back for
inference.

This sits below the Python API (:mod:`visiontl.api`): the API, the ensemble, export,
benchmark, explain and distillation code all load trained runs through here, so none of them
has to reach up into the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiontl import env
from visiontl.config.loader import validate_recipe
from visiontl.config.schema import Recipe
from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup, Preprocessing
from visiontl.errors import PluginError, RunError
from visiontl.ids import parse_model_id
from visiontl.plugin_manager import Plugins, get_plugins
from visiontl.tasks.base import TaskAdapter


def tasks(plugins: Plugins) -> dict[str, TaskAdapter]:
    """Every task the installed plugins define, by name (see :mod:`visiontl.tasks.registry`)."""
    from visiontl.tasks import registry

    return registry.tasks(plugins)


def resolve_task(plugins: Plugins, name: str) -> TaskAdapter:
    """The task adapter for ``name``, or an error with did-you-mean."""
    from visiontl.tasks import registry

    return registry.resolve_task(plugins, name)


def build_model(plugins: Plugins, recipe: Recipe, class_names: list[str], data_root: Path, *, fresh: bool = False) -> BuiltModel:
    """Ask the family's plugin to build the recipe's model.

    Args:
        fresh: build without any pretrained or file weights (a checkpoint will replace them).
    """
    from visiontl.weights import resolve_weights_path

    model_id = parse_model_id(recipe.model.id)
    plugins.require_family(model_id.family)
    weights = None
    if recipe.model.weights and not fresh:
        weights = resolve_weights_path(recipe.model.weights, data_root)
    request = BuildRequest(
        model_id=model_id,
        task=recipe.task,
        num_classes=len(class_names),
        pretrained=recipe.model.pretrained and not fresh and weights is None,
        weights=weights,
        options=dict(recipe.model.options),
        class_names=tuple(class_names),
        input_size=recipe.data.size_hw,
        data_root=data_root,
        trust_weights=recipe.model.trust_weights,
        output=_task_output(plugins, recipe.task),
    )
    built = plugins.hook.visiontl_build(request=request)
    if built is None:
        raise PluginError(f"No plugin built '{model_id}' for task '{recipe.task}'.", fix="see: visiontl plugins")
    built.output = built.output or request.output
    # The size the model is trained and used at, (H, W) as given: what checkpoints store and
    # exports read (the plugin's own size when the recipe leaves it out).
    built.preprocessing = built.preprocessing.with_size(recipe.data.size_hw)
    return built


def _task_output(plugins: Plugins, task: str) -> str:
    """The output contract ``task`` asks of models (empty for a task no plugin defines: the
    family's build then says what it serves)."""
    from visiontl.tasks.registry import output_of

    return output_of(task, plugins=plugins)


def build_model_for_card(card: Any, plugins: Plugins | None = None, num_classes: int = 1000) -> BuiltModel:
    """Build a catalogue card's model with random weights (for timing, not training)."""
    plugins = plugins or get_plugins()
    model_id = parse_model_id(card.id)
    plugins.require_family(model_id.family)
    task = card.tasks[0]
    request = BuildRequest(model_id=model_id, task=task, num_classes=num_classes, class_names=tuple(f"c{i}" for i in range(num_classes)),
                           output=_task_output(plugins, task))
    built = plugins.hook.visiontl_build(request=request)
    if built is None:
        raise PluginError(f"No plugin built '{model_id}'.")
    built.output = built.output or request.output
    return built


def layer_groups(plugins: Plugins, built: BuiltModel) -> list[LayerGroup]:
    """The model's layer groups from its plugin, checked to cover every parameter once."""
    from visiontl.freeze.apply import check_groups

    groups = plugins.hook.visiontl_freeze(built=built)
    if not groups:
        raise PluginError(f"The plugin for '{built.model_id.family}' described no layer groups for '{built.model_id}'.")
    check_groups(built.model, groups)
    return list(groups)


@dataclass
class LoadedModel:
    """A trained model rebuilt from a checkpoint (or an ensemble of them), ready for inference.

    Attributes:
        model: the eval-mode module.
        model_id: its id (``ensemble:<name>`` for an ensemble).
        task: its task name.
        class_names: classes in label order.
        preprocessing: its input convention.
        recipe: the recipe it was trained with (an ensemble's: the ensemble recipe).
        checkpoint: the checkpoint file (an ensemble's: the recipe file).
        built: the plugin's :class:`BuiltModel` (layer groups come from it); ``None`` for an
            ensemble.
        members: an ensemble's members, in the order of ``model.members`` (else empty).
        member_names: short names of the members (run folder names), for reports.
        data_provenance: where its training data came from (as stored in the checkpoint;
            empty for older checkpoints and ensembles).
        epoch: the epoch a best checkpoint was saved at (``None``: last.pt, an ensemble).
    """

    model: Any
    model_id: str
    task: str
    class_names: list[str]
    preprocessing: Preprocessing
    recipe: Recipe
    checkpoint: Path
    built: BuiltModel | None = None
    members: list[LoadedModel] = field(default_factory=list)
    member_names: list[str] = field(default_factory=list)
    data_provenance: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None


def load_trained(target: str | Path, plugins: Plugins | None = None) -> LoadedModel:
    """Rebuild the model of a run directory (its best checkpoint), a checkpoint file, or an
    ensemble recipe (a ``.yaml`` with an ``ensemble:`` section, see :mod:`visiontl.ensemble`).

    Raises:
        RunError: missing, foreign or corrupt checkpoint, one whose weights hold NaN or Inf,
            or one that does not fit its recipe's model.
        ConfigError: a recipe without an ``ensemble`` section, or an invalid ensemble.
    """
    from visiontl.train.checkpoint import checkpoint_for, load_checkpoint, non_finite_tensors

    if Path(target).suffix.lower() in (".yaml", ".yml"):
        from visiontl.ensemble import load_ensemble

        return load_ensemble(Path(target), plugins)
    path = checkpoint_for(Path(target))
    ckpt = load_checkpoint(path)
    bad = non_finite_tensors(ckpt.get("model") or {})
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise RunError(
            f"Checkpoint '{path}' holds NaN or Inf weights in {', '.join(bad[:3])}{more}: "
            "a model with them predicts nonsense.",
            fix="use the run's other checkpoint (checkpoints/last.pt or best.pt), or train again "
            "(a lower optimizer.lr or optimizer.grad_clip if training diverged)",
        )
    recipe = validate_recipe(ckpt["recipe"], f"stored in '{path}'")
    plugins = plugins or get_plugins()
    built = build_model(plugins, recipe, list(ckpt["class_names"]), env.data_root(), fresh=True)
    try:
        built.model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise RunError(f"Checkpoint '{path}' does not fit the model rebuilt from its recipe: {str(exc).splitlines()[0]}") from None
    pre = ckpt["preprocessing"]
    preprocessing = Preprocessing(tuple(pre["input_size"]), tuple(pre["mean"]), tuple(pre["std"]), pre["interpolation"], pre["crop_pct"])
    built.model.eval()
    return LoadedModel(
        built.model, ckpt["model_id"], ckpt["task"], list(ckpt["class_names"]), preprocessing.with_size(recipe.data.size_hw), recipe, path, built,
        data_provenance=dict(ckpt.get("data_provenance") or {}),
        epoch=ckpt.get("epoch") if isinstance(ckpt.get("epoch"), int) else None,
    )
