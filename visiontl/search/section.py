"""The ``search:`` recipe section: what ``visiontl search`` explores, for how long, and where.

Every option is declared once here (type, default, help), like the rest of the recipe schema;
the CLI flags of ``visiontl search`` override the section's values. Until ``Recipe`` gets a
``search`` field, ``visiontl search --recipe`` reads this section from the YAML itself and
validates the rest of the file as an ordinary recipe.

This module imports pydantic only (not :mod:`visiontl.config.schema`), so that the schema can
import :class:`SearchSection` for its ``search`` field without an import cycle; it follows the
schema's section rules (unknown keys are errors, numbers are finite and never booleans) and
a test pins its augmentation presets to the schema's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

#: The recipe schema's augmentation presets (``visiontl.config.schema.AugmentationPreset``).
AugmentationPreset = Literal["none", "light", "standard", "strong", "auto"]
#: Fields that take numbers only: YAML's yes/no/on/off must not pass for 1 and 0 there.
_NUMERIC = ("top", "epochs", "workers", "cpus_per_trial", "gpus_per_trial", "finalists", "max_latency_ms", "bench_seconds", "threads", "seed")

Strategy = Literal["feature_extraction", "progressive", "full"]
#: The order of the strategies: a strategy's neighbours are the ones next to it.
STRATEGY_ORDER: tuple[str, ...] = ("feature_extraction", "progressive", "full")
#: Augmentation presets from lightest to heaviest (``auto`` is not searched: it is a rule).
AUGMENTATION_ORDER: tuple[str, ...] = ("none", "light", "standard", "strong")
#: Latency formats a finalist can be measured in (``torch``: PyTorch eager, no export).
LATENCY_FORMATS: tuple[str, ...] = ("torch", "torchscript", "onnx", "onnx-int8", "openvino", "openvino-int8")


class SearchSection(BaseModel):
    """A budgeted, latency-aware transfer search (``visiontl search``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    target: str = Field("server", description="Deployment target: its latency budget filters the candidates and its export formats measure the finalists (edge, mobile, server, cloud, local).")
    budget: str = Field("10", description="Trials to finish ('12') or wall-clock time ('90s', '20m', '1h30m').")
    models: list[str] | None = Field(
        None,
        description="Candidate models 'family:name' or 'family:name=WEIGHTS' (a local weights file); "
        "default: the recipe's model plus the selection engine's top candidates within the target's latency budget.",
    )
    top: int = Field(3, ge=0, description="How many of the selection engine's candidates join the search (when models is not given).")
    strategies: list[Strategy] | None = Field(
        None, description="Transfer strategies to try; default: the one the selection rules advise for the data size, and its neighbours."
    )
    lr: tuple[float, float] = Field((1e-4, 1e-2), description="Range of the head's learning rate, sampled log-uniformly.")
    lr_spread: list[float] = Field(
        [1.0, 10.0, 100.0],
        description="Ratios head lr / first group's lr tried by progressive and full fine-tuning (1: one rate for all groups).",
    )
    sizes: list[int] | None = Field(None, description="Input sizes to try; default: the recipe's (or the models') size and 3/4 of it.")
    augmentations: list[AugmentationPreset] | None = Field(
        None, description="Augmentation presets to try; default: the advised one and its neighbours."
    )
    epochs: int | None = Field(None, ge=1, description="Epochs of each trial; default: the recipe's train.epochs.")
    pruner: Literal["sha", "hyperband", "none"] = Field(
        "sha", description="Stops unpromising trials on their per-epoch validation metric: successive halving, Hyperband, or none."
    )
    backend: Literal["local", "ray"] = Field("local", description="local: worker processes on this machine; ray: trials on a Ray cluster (Ray Tune).")
    workers: int = Field(1, ge=1, description="Trials run at the same time (local processes, or concurrent Ray trials).")
    address: str | None = Field(None, description="Ray: address of a running cluster ('auto', 'ray://host:10001', 'host:6379'); default: a local Ray instance.")
    cpus_per_trial: float = Field(1.0, gt=0.0, description="Ray: CPUs reserved by each trial.")
    gpus_per_trial: float | None = Field(None, ge=0.0, description="Ray: GPUs reserved by each trial; default: 1 when the cluster has GPUs, else 0.")
    storage: str | None = Field(None, description="Optuna storage URL of a shared study (e.g. postgresql://..., mysql://...); default: study.db (SQLite) in the search folder.")
    study_name: str | None = Field(None, description="Name of the Optuna study; default: the search folder's name.")
    finalists: int = Field(3, ge=1, description="Pareto-front trials exported and measured at the end.")
    formats: list[str] | None = Field(
        None, description="Formats the finalists are exported to and timed in (torch, onnx, onnx-int8, openvino, openvino-int8, torchscript); default: the target's."
    )
    max_latency_ms: float | None = Field(None, gt=0.0, description="Choose the best trial among finalists measured at most this fast (batch 1, this machine).")
    bench_seconds: float = Field(1.0, gt=0.0, description="Minimum timing seconds per latency measurement.")
    threads: int | None = Field(None, ge=1, description="torch threads per trial; default: the recipe's, or the CPU cores shared among local workers.")
    seed: int = Field(0, description="Seed of the sampler (TPE).")

    @field_validator(*_NUMERIC, mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"must be a number, not {str(value).lower()}")
        return value

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> Any:
        from visiontl.search.budget import parse_budget

        if isinstance(value, bool):
            raise ValueError("must be a number of trials or a duration, not a boolean")
        try:
            parse_budget(value)
        except Exception as exc:  # noqa: BLE001 - reported by pydantic with the field path
            raise ValueError(str(exc)) from None
        return str(value)

    @field_validator("lr")
    @classmethod
    def _lr(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (0 < low <= high):
            raise ValueError(f"lr must be [low, high] with 0 < low <= high, not {list(value)}")
        return value

    @field_validator("lr_spread")
    @classmethod
    def _spread(cls, value: list[float]) -> list[float]:
        if not value or any(v < 1 for v in value):
            raise ValueError(f"lr_spread ratios must be 1 or more, not {value}")
        return value

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(s < 16 for s in value)):
            raise ValueError(f"sizes must be 16 pixels or more, not {value}")
        return value

    @field_validator("models", "strategies", "augmentations")
    @classmethod
    def _not_empty(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and not value:
            raise ValueError("give at least one value, or leave it out for the default")
        return value

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        bad = [f for f in value if f not in LATENCY_FORMATS]
        if bad or not value:
            raise ValueError(f"unknown format(s) {bad or value}: use {', '.join(LATENCY_FORMATS)}")
        return value


def search_section(data: dict[str, Any] | None, source: str = "<search>") -> SearchSection:
    """Validate a ``search:`` mapping, with the recipe loader's field-path messages.

    Raises:
        ConfigError: every problem, with its ``search.<field>`` path.
    """
    from pydantic import ValidationError

    from visiontl.errors import ConfigError

    try:
        return SearchSection.model_validate(data or {})
    except ValidationError as exc:
        problems = [f"search.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError(f"The search section of {source} has {len(problems)} problem(s): " + " | ".join(problems),
                          fix="see: visiontl search --help (and docs/search.md)") from None
