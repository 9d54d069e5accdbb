"""What ``visiontl benchmark`` can measure: model ids, runs, checkpoints, recipes.

* A **path** (run directory, checkpoint, or a recipe the loader accepts, such as an ensemble
  recipe) is rebuilt by :func:`visiontl.trained.load_trained`: its trained weights, classes,
  preprocessing and recipe (so ``--data`` can score it). An ensemble brings its members
  along, measured next to it.
* A **model id** (``timm:resnet50``) is built by its plugin with random weights (latency does
  not depend on the weights), or with its published weights when ``pretrained`` is asked and
  they are available offline; which one it got is recorded with every row. Its task and input
  size come from its catalogue card when it has one (else ``--task`` / ``--input-size``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from visiontl import log
from visiontl.cards import ModelCard
from visiontl.config.schema import Recipe
from visiontl.contracts import BuildRequest, BuiltModel, Preprocessing
from visiontl.errors import ConfigError, PluginError, WeightsError
from visiontl.ids import parse_model_id

#: Classes of the random head a bare model id gets, per task (the usual pretraining sets).
DEFAULT_CLASSES = {"classification": 1000, "detection": 80, "instance_segmentation": 80, "segmentation": 21}


@dataclass
class Target:
    """One model to measure.

    Attributes:
        label: what the user typed.
        model: the module (eval mode).
        model_id: its id.
        task: its task.
        preprocessing: its input convention (input size included).
        class_names: its output classes.
        weights: where its weights came from (``random``, ``pretrained:...``, ``trained:<ckpt>``).
        kind: ``model id``, ``run``, ``checkpoint``, ``recipe`` or ``ensemble member``.
        recipe: its recipe (runs and checkpoints), for accuracy and calibration data.
        built: build metadata for the benchmark hook (``None`` when the id does not parse,
            e.g. an ensemble).
        card: its catalogue card, if any (published figures for the chart).
    """

    label: str
    model: nn.Module
    model_id: str
    task: str
    preprocessing: Preprocessing
    class_names: list[str]
    weights: str
    kind: str
    recipe: Recipe | None = None
    built: BuiltModel | None = None
    card: ModelCard | None = None
    notes: list[str] = field(default_factory=list)


def find_card(model_id: str, plugins: Any) -> ModelCard | None:
    """The catalogue card of ``model_id``, if a plugin offers one."""
    from visiontl.catalogue import catalogue

    family = model_id.split(":", 1)[0]
    for card in catalogue(family=family, plugins=plugins):
        if card.id == model_id:
            return card
    return None


def load_targets(
    label: str,
    plugins: Any,
    *,
    task: str | None = None,
    input_size: tuple[int, int] | None = None,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    pretrained: bool = False,
) -> list[Target]:
    """Resolve one command-line target to :class:`Target` s (an ensemble: itself, then each
    of its members).

    Args:
        label: a model id, or the path of a run, checkpoint or recipe.
        task: the task of a bare model id (default: its card's first task, else classification).
        input_size: overrides the model's input size.
        num_classes: classes of a bare model id's random head (default per task).
        class_names: class names of a bare model id's head (``--data`` gives them).
        pretrained: build a bare model id with published weights when they are at hand.

    Raises:
        ConfigError: the target is neither an existing path nor a model id.
    """
    path = Path(label)
    if path.exists():
        return _load_trained(label, path, plugins, input_size)
    if ":" not in label:
        raise ConfigError(
            f"Benchmark target '{label}' is neither an existing run, checkpoint or recipe nor a model id (family:name).",
            fix="pass a run directory, a checkpoint, or an id such as timm:resnet50 (see: visiontl models)",
        )
    return [_build_id(label, plugins, task, input_size, num_classes, class_names, pretrained)]


def _load_trained(label: str, path: Path, plugins: Any, input_size: tuple[int, int] | None) -> list[Target]:
    from visiontl.trained import load_trained

    loaded = load_trained(path, plugins)
    kind = "run" if path.is_dir() else ("recipe" if path.suffix.lower() in (".yaml", ".yml") else "checkpoint")
    out = [_from_loaded(label, loaded, kind, input_size)]
    # An ensemble is measured next to each of its members (same harness, same data).
    members = list(getattr(loaded, "members", []) or [])
    names = list(getattr(loaded, "member_names", []) or [])
    for i, member in enumerate(members):
        name = names[i] if i < len(names) else f"member{i + 1}"
        member_target = _from_loaded(f"{label}#{name}", member, "ensemble member", input_size)
        member_target.notes.append(f"member '{name}' of the ensemble {label}")
        out.append(member_target)
    return out


def _from_loaded(label: str, loaded: Any, kind: str, input_size: tuple[int, int] | None) -> Target:
    pre = loaded.preprocessing.with_size(input_size)
    built = getattr(loaded, "built", None)
    if built is None:
        try:
            built = BuiltModel(model=loaded.model, model_id=parse_model_id(loaded.model_id), task=loaded.task, preprocessing=pre)
        except Exception:  # noqa: BLE001 - an id that is not family:name: the generic harness needs none
            built = None
    return Target(label, loaded.model.eval(), loaded.model_id, loaded.task, pre, list(loaded.class_names),
                  f"trained:{loaded.checkpoint}", kind, loaded.recipe, built)


def _build_id(label: str, plugins: Any, task: str | None, input_size: tuple[int, int] | None, num_classes: int | None,
              class_names: list[str] | None, pretrained: bool) -> Target:
    model_id = parse_model_id(label)
    plugins.require_family(model_id.family)
    card = find_card(str(model_id), plugins)
    task = task or (card.tasks[0] if card else "classification")
    if class_names:
        names = list(class_names)
    else:
        names = [f"c{i}" for i in range(num_classes or DEFAULT_CLASSES.get(task, 1000))]
    size = input_size or (tuple(card.input_size) if card else None)
    notes: list[str] = []

    def build(with_weights: bool) -> BuiltModel:
        request = BuildRequest(model_id=model_id, task=task, num_classes=len(names), pretrained=with_weights,
                               class_names=tuple(names), input_size=size)  # type: ignore[arg-type]
        built = plugins.hook.visiontl_build(request=request)
        if built is None:
            raise PluginError(f"No plugin built '{model_id}' for task '{task}'.", fix="see: visiontl plugins")
        return built

    if pretrained:
        try:
            built = build(True)
        except WeightsError as exc:
            notes.append(f"pretrained weights unavailable ({exc.message}); measured with random weights")
            log.warning(f"{model_id}: {notes[-1]}")
            built = build(False)
    else:
        built = build(False)
    if size is not None and tuple(built.preprocessing.input_size) != tuple(size):
        notes.append(f"the plugin reports input size {built.preprocessing.input_size[0]}x{built.preprocessing.input_size[1]} "
                     f"for this model; it was fed {size[0]}x{size[1]}")
    pre = built.preprocessing.with_size(size)
    built.preprocessing = pre
    return Target(label, built.model.eval(), str(model_id), task, pre, names, built.weights.source, "model id",
                  None, built, card, notes)
