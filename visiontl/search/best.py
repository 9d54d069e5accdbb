"""``best.yaml``: the chosen trial as a runnable recipe.

It is the base recipe with the trial's settings applied (as short as the user's own recipe),
checked to resolve to exactly the ``recipe.yaml`` the trial trained with (else that resolved
recipe is written instead), with the output moved back to ``runs/<task>/<search>-best``,
progress bars back on, and an ``export:`` section for the deployment format the search
measured. It is validated by :func:`visiontl.config.loader.validate_recipe` before it is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from visiontl.search.budget import format_seconds
from visiontl.search.spec import SearchSpec


def best_recipe(spec: SearchSpec, row: dict[str, Any]) -> dict[str, Any]:
    """The recipe dict of the chosen trial (validated)."""
    from visiontl.benchmark.formats import BENCH_FORMATS
    from visiontl.config.loader import recipe_to_dict, validate_recipe
    from visiontl.search.space import trial_recipe
    from visiontl.search.trial import threads_for

    trained = yaml.safe_load((Path(row["run_dir"]) / "recipe.yaml").read_text(encoding="utf-8"))
    recipe = trial_recipe(spec.base, row["params"], spec.space, Path("runs"), f"{spec.out.name}-best", threads_for(spec))

    def comparable(data: dict[str, Any]) -> dict[str, Any]:
        data = recipe_to_dict(validate_recipe(data, "(best.yaml check)"))
        data.pop("output"), data.pop("export"), data["train"].pop("progress")
        return data

    if comparable(recipe) != comparable(trained):
        recipe = trained  # the short form would not reproduce the trial: write what it ran
    recipe["output"] = {**recipe.get("output", {}), "dir": "runs", "name": f"{spec.out.name}-best"}
    recipe.setdefault("train", {})["progress"] = "bars"
    fmt = BENCH_FORMATS.get(row.get("deploy_format") or "")
    if fmt is not None and fmt.export is not None:
        recipe["export"] = {"formats": [fmt.export], "precision": "int8" if fmt.quantized else "fp32"}
    validate_recipe(recipe, f"(best trial {row['trial']} of {spec.out})")
    return recipe


def write_best(spec: SearchSpec, row: dict[str, Any]) -> Path:
    """Write ``best.yaml`` in the search folder, with a header that says where it came from."""
    from visiontl.runs.layout import atomic_write_text

    recipe = best_recipe(spec, row)
    latency = f"{row['deploy_ms']:.2f} ms batch-1 as {row['deploy_format']} on the search machine" if row.get("deploy_ms") is not None else "latency not measured"
    header = [
        f"# The best trial of the search in {spec.out} (visiontl search, target '{spec.settings.target}').",
        f"# Trial {row['trial']}: {row['label']}",
        f"# Validation {spec.metric} {row['value']:.4f} after {row['epochs']} epoch(s)"
        + (f" in {format_seconds(row['seconds'])}" if row.get("seconds") else "") + f"; {latency}.",
        f"# Its run: {row['run_dir']} (checkpoints, report, exports).",
        "# Train it again (longer: --set train.epochs=N):  visiontl run best.yaml",
    ]
    path = spec.out / "best.yaml"
    atomic_write_text(path, "\n".join(header) + "\n" + yaml.safe_dump(recipe, sort_keys=False))
    return path
