"""Ensembles: several trained models used as one (weighted averaging, as their task says).

A recipe with an ``ensemble`` section names trained runs or checkpoints and their weights::

    task: classification
    data: {root: hymenoptera_data}          # what eval measures on
    model: {id: torchvision:squeezenet1_1}  # required by the schema; not built (the members are)
    ensemble:
      members: [runs/classification/seed0, runs/classification/seed1]
      weights: [1, 1]                       # default: equal

:func:`visiontl.trained.load_trained` turns such a recipe into a :class:`~visiontl.trained.LoadedModel`
whose model is an :class:`EnsembleModel`, so ``eval``, ``predict``, ``benchmark`` and
``export`` take it like a single model.

**Output.** The task combines its members' outputs
(:meth:`~visiontl.tasks.base.TaskAdapter.combine_outputs`), so the ensemble's output has the
task's own form and the task's evaluation, prediction and loss treat it like one model's.
Classification returns the *log* of the weighted mean of the members' softmax probabilities,
``log(sum_i w_i softmax(z_i))`` with ``sum_i w_i = 1``, shape ``[B, C]``: valid logits
(``softmax`` gives back the averaged probabilities exactly, ``argmax`` is the ensemble's
prediction, cross-entropy its negative log-likelihood). A task that does not say how its
outputs combine cannot be ensembled (a clear error says so).

**Preprocessing.** Members must share their input geometry (input size, resize
interpolation, crop fraction): the image is resized and cropped once. They may differ in
normalisation (mean/std): the ensemble takes the input normalised with the first member's
convention and re-normalises it exactly for each other member (``x * s + t``, per channel).

**Rules** (clear errors otherwise): at least two members, every member a run of the recipe's
task with the same class names (or targets) in the same order, every weight positive;
members are run directories or checkpoints (not other ensembles). Relative member paths are
looked up from the current directory, then from the recipe's folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from visiontl.errors import ConfigError, RunError

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.contracts import Preprocessing
    from visiontl.plugin_manager import Plugins
    from visiontl.trained import LoadedModel


class Renormalise(nn.Module):
    """Maps an input normalised with one mean/std to another: ``x * scale + shift``."""

    def __init__(self, source: Preprocessing, target: Preprocessing) -> None:
        super().__init__()
        mean_s, std_s = torch.tensor(source.mean), torch.tensor(source.std)
        mean_t, std_t = torch.tensor(target.mean), torch.tensor(target.std)
        # (x * std_s + mean_s - mean_t) / std_t
        self.register_buffer("scale", (std_s / std_t).view(1, 3, 1, 1))
        self.register_buffer("shift", ((mean_s - mean_t) / std_t).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


class EnsembleModel(nn.Module):
    """Weighted averaging of models' outputs; by default softmax averaging of classifiers,
    returning log-probabilities ``[B, C]``.

    Args:
        members: the models (each maps ``[B, 3, H, W]`` to its task's output).
        weights: one positive weight per member (normalised to sum to 1); default equal.
        adapters: per member, a module applied to the input first (``None``: the input as
            is), e.g. :class:`Renormalise`.
        combine: ``combine(outputs, weights) -> output`` (``weights``: a 1-D tensor summing
            to 1), the task's
            :meth:`~visiontl.tasks.base.TaskAdapter.combine_outputs`; ``None``: softmax
            averaging of logits (classification's).

    Example:
        >>> ens = EnsembleModel([model_a, model_b], [2.0, 1.0])  # doctest: +SKIP
        >>> ens(x).exp().sum(1)  # probabilities sum to 1  # doctest: +SKIP
    """

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float] | None = None, adapters: Sequence[nn.Module | None] | None = None,
                 combine: Callable[[Sequence[torch.Tensor], torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self._combine = combine
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or any(w <= 0 for w in weights):
            raise ValueError(f"need one positive weight per member, got {weights} for {len(members)} members")
        adapters = [None] * len(members) if adapters is None else list(adapters)
        self.members = nn.ModuleList(members)
        self.adapters = nn.ModuleList([a if a is not None else nn.Identity() for a in adapters])
        total = sum(weights)
        self.register_buffer("log_weights", torch.log(torch.tensor([w / total for w in weights], dtype=torch.float32)))

    @property
    def weights(self) -> list[float]:
        """The normalised weights."""
        return [float(w) for w in self.log_weights.exp()]

    def member_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's logits for ``x`` (after its adapter)."""
        return [member(adapter(x)) for member, adapter in zip(self.members, self.adapters, strict=True)]

    def combine(self, logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """The members' outputs as one: the task's combination, else
        ``log(sum_i w_i softmax(logits_i))``, computed stably with ``logsumexp``."""
        if self._combine is not None:
            # The weights as a tensor from the buffer: an export traces them as the model's own.
            return self._combine(list(logits), self.log_weights.exp())
        log_probs = torch.stack([F.log_softmax(z.float(), dim=1) for z in logits])
        return torch.logsumexp(log_probs + self.log_weights.view(-1, 1, 1), dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.member_logits(x))


def member_label(path: Path) -> str:
    """A short name for a member: the run folder's name (``seed0``), ``seed0/last`` for a
    checkpoint other than a run's best, or the file's stem."""
    if path.is_dir():
        return path.name
    if path.parent.name == "checkpoints":
        run = path.parent.parent.name
        return run if path.stem == "best" else f"{run}/{path.stem}"
    return path.stem


def _resolve_member(member: str, recipe_path: Path) -> Path:
    path = Path(member).expanduser()
    if path.is_absolute() or path.exists():
        return path
    beside = recipe_path.parent / path
    return beside if beside.exists() else path


def _geometry(pre: Preprocessing) -> tuple[Any, ...]:
    return (tuple(pre.input_size), pre.interpolation, round(pre.crop_pct, 6))


def load_ensemble(recipe_path: str | Path, plugins: Plugins | None = None, overrides: list[str] | None = None) -> LoadedModel:
    """Load an ensemble recipe's members and combine them into one :class:`LoadedModel`.

    The result's ``model`` is an :class:`EnsembleModel`, ``members`` the members' own
    :class:`LoadedModel`\\ s, ``built`` ``None`` (an ensemble has no layer groups),
    ``checkpoint`` the recipe file and ``preprocessing`` the first member's.

    Raises:
        ConfigError: no ``ensemble`` section, a task that does not say how its outputs
            combine, a zero weight, or a member that is itself a recipe.
        RunError: members disagree on task, classes or input geometry, or cannot be loaded.
    """
    from visiontl.config.loader import load_recipe
    from visiontl.plugin_manager import get_plugins
    from visiontl.tasks.base import TaskAdapter
    from visiontl.tasks.registry import resolve_task
    from visiontl.trained import LoadedModel, load_trained

    recipe_path = Path(recipe_path)
    recipe = load_recipe(recipe_path, overrides)
    section = recipe.ensemble
    if section is None:
        raise ConfigError(
            f"Recipe '{recipe_path}' has no ensemble section, so there is no trained model to load.",
            fix=f"train it first (visiontl run {recipe_path}) and pass the run directory, or add an ensemble: section",
        )
    plugins = plugins or get_plugins()
    task = resolve_task(plugins, recipe.task)
    if type(task).combine_outputs is TaskAdapter.combine_outputs:
        raise ConfigError(
            f"Recipe '{recipe_path}' has task '{recipe.task}', which does not say how to combine several models' outputs into one.",
            fix="ensemble a task that does (classification ...), or implement TaskAdapter.combine_outputs for it",
        )
    weights = list(section.weights) if section.weights is not None else [1.0] * len(section.members)
    zero = [m for m, w in zip(section.members, weights, strict=True) if w <= 0]
    if zero:
        raise ConfigError(f"Ensemble member(s) {', '.join(zero)} have weight 0.", fix="remove them from ensemble.members (and their weights)")
    members: list[LoadedModel] = []
    for member in section.members:
        path = _resolve_member(member, recipe_path)
        if path.suffix.lower() in (".yaml", ".yml"):
            raise ConfigError(f"Ensemble member '{member}' is a recipe; members must be trained runs or checkpoints.", fix="list the members' run directories (nested ensembles: list their members)")
        if not path.exists():
            raise RunError(f"Ensemble member '{member}' not found (looked in the current directory and beside '{recipe_path}').", fix="list run directories or checkpoint files that exist")
        members.append(load_trained(path, plugins))
    first = members[0]
    for path, m in zip(section.members, members, strict=True):
        if m.task != recipe.task:
            raise RunError(f"Ensemble member '{path}' is a {m.task} model; the ensemble recipe's task is {recipe.task}.", fix=f"list {recipe.task} runs only")
        if m.class_names != first.class_names:
            raise RunError(
                f"Ensemble member '{path}' predicts {m.class_names}, member '{section.members[0]}' {first.class_names}.",
                fix=f"ensemble runs trained on the same {task.label_kind}, in the same order (data.class_names fixes the order)",
            )
        if _geometry(m.preprocessing) != _geometry(first.preprocessing):
            raise RunError(
                f"Ensemble member '{path}' takes {m.preprocessing.input_size} px images ({m.preprocessing.interpolation}, crop {m.preprocessing.crop_pct}), "
                f"member '{section.members[0]}' {first.preprocessing.input_size} px ({first.preprocessing.interpolation}, crop {first.preprocessing.crop_pct}).",
                fix="ensemble members that share their input size and crop (set data.image_size alike when training them)",
            )
    if recipe.data.size_hw is not None and recipe.data.size_hw != tuple(first.preprocessing.input_size):
        raise ConfigError(
            f"The ensemble recipe sets data.image_size {recipe.data.image_size}, its members take {first.preprocessing.input_size}.",
            fix="leave data.image_size out of the ensemble recipe: the members' input size is used",
        )
    adapters = [None if (m.preprocessing.mean, m.preprocessing.std) == (first.preprocessing.mean, first.preprocessing.std) else Renormalise(first.preprocessing, m.preprocessing) for m in members]
    model = EnsembleModel([m.model for m in members], weights, adapters, combine=task.combine_outputs).eval()
    name = recipe.output.name or recipe_path.stem
    return LoadedModel(
        model=model,
        model_id=f"ensemble:{name}",
        task=recipe.task,
        class_names=list(first.class_names),
        preprocessing=first.preprocessing,
        recipe=recipe,
        checkpoint=recipe_path,
        built=None,
        members=members,
        member_names=_unique([member_label(_resolve_member(p, recipe_path)) for p in section.members]),
    )


def _unique(names: list[str]) -> list[str]:
    """Names made unique with ``#2``, ``#3`` ... suffixes."""
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in out:
            n += 1
            candidate = f"{name}#{n}"
        out.append(candidate)
    return out
