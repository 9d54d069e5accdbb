"""The search space: candidate models and the transfer settings tried on each.

A space is plain data (JSON in ``search.json`` and in the study's attributes, so that a
resumed search or a worker joining a shared study samples exactly the same space). It knows
how to sample one trial's parameters from an Optuna trial (define-by-run: the learning-rate
spread exists only for strategies that train more than the head) and how to turn those
parameters into an ordinary recipe.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Parameter names, in the order they are sampled and shown.
PARAMS = ("model", "strategy", "lr", "lr_spread", "image_size", "augmentation")


@dataclass
class CandidateModel:
    """One model the search may train.

    Attributes:
        key: the value sampled for ``model`` (the id, or ``id=weights`` for a local file).
        model_id: ``family:name``.
        weights: a local weights file (relative to the data root, or absolute), if any.
        pretrained: start from the family's published weights.
        options: family build options (the base recipe's, for its own model).
        source: where it came from: ``recipe``, ``models`` (given by the user) or ``selection``.
        predicted_ms: batch-1 latency the selection engine predicts on the target, if known.
        params_m: parameters in millions, if known.
        card_size: the input size its card's figures refer to.
        profile: its MAC profile (``MacProfile`` fields), for cost estimates.
        reasons: the selection engine's line of reasons.
    """

    key: str
    model_id: str
    weights: str | None = None
    pretrained: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    source: str = "models"
    predicted_ms: float | None = None
    params_m: float | None = None
    card_size: int | None = None
    profile: dict[str, float] | None = None
    reasons: str = ""

    def short(self) -> str:
        """The name shown in progress lines and tables."""
        return self.model_id + (" (weights file)" if self.weights else "")


@dataclass
class SearchSpace:
    """What a search samples.

    Attributes:
        candidates: the models.
        strategies: transfer strategies.
        lr: ``(low, high)`` of the head learning rate (log-uniform).
        lr_spread: head lr / first group's lr ratios (progressive and full only).
        sizes: input sizes.
        augmentations: augmentation presets.
        epochs: epochs per trial.
        notes: why the space is what it is (selection advice, dropped candidates).
    """

    candidates: list[CandidateModel]
    strategies: list[str]
    lr: tuple[float, float]
    lr_spread: list[float]
    sizes: list[int]
    augmentations: list[str]
    epochs: int
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ identity
    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        data = dict(data)
        data["candidates"] = [CandidateModel(**c) for c in data["candidates"]]
        data["lr"] = tuple(data["lr"])
        return cls(**data)

    def fingerprint(self) -> dict[str, Any]:
        """What must match for two processes to share one study (the sampled dimensions)."""
        return {
            "model": [c.key for c in self.candidates], "strategy": list(self.strategies), "lr": list(self.lr),
            "lr_spread": list(self.lr_spread), "image_size": list(self.sizes), "augmentation": list(self.augmentations),
            "epochs": self.epochs,
        }

    def candidate(self, key: str) -> CandidateModel:
        for c in self.candidates:
            if c.key == key:
                return c
        raise KeyError(f"no candidate '{key}' in the search space")

    # ------------------------------------------------------------------ sampling
    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample one trial's parameters (define-by-run, Optuna's ``Trial`` API).

        Dimensions with a single choice are still recorded, so every trial's parameters are
        complete in the study.
        """
        params: dict[str, Any] = {
            "model": trial.suggest_categorical("model", [c.key for c in self.candidates]),
            "strategy": trial.suggest_categorical("strategy", list(self.strategies)),
            "lr": trial.suggest_float("lr", self.lr[0], self.lr[1], log=True),
        }
        # Only phases that unfreeze body groups use a spread: sampling it for feature
        # extraction would add a dimension that changes nothing.
        if params["strategy"] != "feature_extraction":
            params["lr_spread"] = trial.suggest_categorical("lr_spread", list(self.lr_spread))
        params["image_size"] = trial.suggest_categorical("image_size", list(self.sizes))
        params["augmentation"] = trial.suggest_categorical("augmentation", list(self.augmentations))
        return params

    def base_params(self, base: dict[str, Any]) -> dict[str, Any] | None:
        """The base recipe's own settings as a point of this space (tried first), or ``None``
        when the recipe's model, strategy, size or preset is not in the space."""
        model = base.get("model") or {}
        key = candidate_key(str(model.get("id", "")), model.get("weights"))
        strategy = (base.get("strategy") or {}).get("name", "feature_extraction")
        size = (base.get("data") or {}).get("image_size")
        if size is None:  # the model's own size
            size = next((c.card_size for c in self.candidates if c.key == key and c.card_size in self.sizes), None)
        preset = (base.get("augmentation") or {}).get("preset", "auto")
        keys = [c.key for c in self.candidates]
        if key not in keys or strategy not in self.strategies or preset not in self.augmentations or size not in self.sizes:
            return None
        lr = (base.get("optimizer") or {}).get("lr", 1e-3)
        if isinstance(lr, (list, tuple)) and len(lr) == 2:
            head, spread = float(lr[1]), float(lr[1]) / float(lr[0])
        elif isinstance(lr, (int, float)):
            head, spread = float(lr), 1.0
        else:
            return None  # a {group: lr} map is not a point of this space
        if not self.lr[0] <= head <= self.lr[1]:
            return None
        params: dict[str, Any] = {"model": key, "strategy": strategy, "lr": head}
        if strategy != "feature_extraction":
            params["lr_spread"] = min(self.lr_spread, key=lambda s: abs(s - spread))
        params.update(image_size=size, augmentation=preset)
        return params

    # ------------------------------------------------------------------ describing
    def describe(self) -> list[str]:
        """Lines for ``--dry-run`` and the search log."""
        lines = ["models:"]
        for c in self.candidates:
            facts = []
            if c.predicted_ms is not None:
                facts.append(f"predicted {c.predicted_ms:.1f} ms on the target")
            if c.params_m is not None:
                facts.append(f"{c.params_m:.1f} M params")
            facts.append(f"weights: {c.weights or ('pretrained' if c.pretrained else 'none (random init)')}")
            facts.append(f"from {c.source}")
            lines.append(f"  - {c.key}: {'; '.join(facts)}")
        spread = ", ".join(f"{s:g}" for s in self.lr_spread)
        lines += [
            f"strategies: {', '.join(self.strategies)}",
            f"head lr: {self.lr[0]:g} .. {self.lr[1]:g} (log-uniform); lr spread (head / first group, progressive and full): {spread}",
            f"input sizes: {', '.join(str(s) for s in self.sizes)}",
            f"augmentation: {', '.join(self.augmentations)}",
            f"epochs per trial: {self.epochs}",
        ]
        return lines


def candidate_key(model_id: str, weights: str | None) -> str:
    """The sampled value for a model: its id, or ``id=weights``."""
    return f"{model_id}={weights}" if weights else model_id


def describe_params(params: dict[str, Any], space: SearchSpace | None = None) -> str:
    """``timm:resnet18 progressive lr 3e-03/10 224px light`` (for progress lines)."""
    model = str(params.get("model", "?"))
    if space is not None:
        try:
            model = space.candidate(model).short()
        except KeyError:
            pass
    lr = f"lr {params['lr']:.1e}" if isinstance(params.get("lr"), (int, float)) else ""
    if params.get("lr_spread"):
        lr += f"/{params['lr_spread']:g}"
    return " ".join(str(p) for p in (model, params.get("strategy", ""), lr, f"{params.get('image_size')}px", params.get("augmentation", "")) if p)


def trial_recipe(base: dict[str, Any], params: dict[str, Any], space: SearchSpace, runs_dir: Path, name: str,
                 threads: int | None = None) -> dict[str, Any]:
    """The recipe of one trial: the base recipe with the sampled settings applied.

    Args:
        base: the base recipe dict (no ``search`` section).
        params: sampled parameters (see :meth:`SearchSpace.suggest`).
        space: the space (the candidate's weights and options, epochs).
        runs_dir: where trial runs go (``output.dir``).
        name: the run's name (``trial-0003``).
        threads: torch threads to set (``None``: the base recipe's setting stays).

    Returns:
        A recipe dict for :func:`visiontl.config.loader.validate_recipe`.
    """
    recipe = copy.deepcopy(base)
    recipe.pop("search", None)
    # Finalists are exported once the search ends; exporting every trial would cost more than it teaches.
    recipe.pop("export", None)
    cand = space.candidate(params["model"])
    base_model = base.get("model") or {}
    model: dict[str, Any] = {"id": cand.model_id, "pretrained": cand.pretrained}
    if cand.weights:
        model["weights"] = cand.weights
    if cand.options:
        model["options"] = dict(cand.options)
    if base_model.get("trust_weights") and cand.weights == base_model.get("weights"):
        model["trust_weights"] = True
    recipe["model"] = model

    strategy_name = params["strategy"]
    base_strategy = dict(base.get("strategy") or {})
    strategy: dict[str, Any] = {"name": strategy_name}
    for key in ("bn", "unfreeze_last"):
        if key in base_strategy:
            strategy[key] = base_strategy[key]
    if strategy_name == "progressive":
        # The base's phase split is kept when it fits the trial's epochs; otherwise the
        # planner splits train.epochs into three.
        phase_epochs = base_strategy.get("phase_epochs") if base_strategy.get("name") == "progressive" else None
        if phase_epochs and sum(phase_epochs) == space.epochs:
            strategy["phase_epochs"] = list(phase_epochs)
        if base_strategy.get("head_augmentation"):
            strategy["head_augmentation"] = base_strategy["head_augmentation"]
    recipe["strategy"] = strategy

    optimizer = dict(recipe.get("optimizer") or {})
    head = float(params["lr"])
    spread = float(params.get("lr_spread") or 1.0)
    optimizer["lr"] = head if strategy_name == "feature_extraction" or spread == 1.0 else [head / spread, head]
    recipe["optimizer"] = optimizer

    recipe.setdefault("data", {})["image_size"] = int(params["image_size"])
    recipe["augmentation"] = {**(recipe.get("augmentation") or {}), "preset": params["augmentation"]}
    train = dict(recipe.get("train") or {})
    train["epochs"] = space.epochs
    train["progress"] = "none"  # the search prints one line per epoch of its own
    if threads is not None:
        train["threads"] = threads
    recipe["train"] = train
    recipe["output"] = {**(recipe.get("output") or {}), "dir": str(runs_dir), "name": name}
    return recipe
