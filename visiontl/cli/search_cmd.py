"""``visiontl search``: a budgeted, latency-aware transfer search (a thin layer over
:mod:`visiontl.search.api`; nothing heavy is imported until the command runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from visiontl.cli.options import data_root_option, echo_json, json_option, set_option


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _floats(text: str | None, what: str) -> list[float] | None:
    from visiontl.errors import ConfigError

    items = _csv(text)
    if items is None:
        return None
    try:
        return [float(t) for t in items]
    except ValueError:
        raise ConfigError(f"{what} '{text}' is not a comma-separated list of numbers.") from None


def _ints(text: str | None, what: str) -> list[int] | None:
    values = _floats(text, what)
    return [int(v) for v in values] if values is not None else None


@click.command("search")
@click.option("--task", default=None, help="Task (default: the recipe's): classification, detection, segmentation, or a plugin's task.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="Dataset folder (overrides the recipe's data.root).")
@click.option("--target", default=None, help="Deployment target: edge, mobile, server, cloud, local [default: server].")
@click.option("--budget", default=None, help="Trials to finish ('12') or wall-clock time ('90s', '20m', '1h30m') [default: 10].")
@click.option("--recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Base recipe every trial starts from; its 'search:' section gives default settings.")
@set_option
@click.option("--models", default=None, metavar="ID[=WEIGHTS],...", help="Candidate models (default: the recipe's model plus the selection engine's top ones).")
@click.option("--top", type=int, default=None, help="Selection-engine candidates to add when --models is not given [default: 3].")
@click.option("--strategies", default=None, help="Strategies to try, e.g. feature_extraction,progressive (default: the advised one and its neighbours).")
@click.option("--lr", "lr_range", default=None, metavar="LOW,HIGH", help="Range of the head learning rate [default: 1e-4,1e-2].")
@click.option("--lr-spread", default=None, metavar="R,...", help="Head lr / first group's lr ratios to try [default: 1,10,100].")
@click.option("--sizes", default=None, metavar="N,...", help="Input sizes to try (default: the recipe's size and 3/4 of it).")
@click.option("--augmentations", default=None, metavar="P,...", help="Augmentation presets to try (default: the advised one and its neighbours).")
@click.option("--epochs", type=int, default=None, help="Epochs per trial (default: the recipe's train.epochs).")
@click.option("--pruner", type=click.Choice(["sha", "hyperband", "none"]), default=None, help="Successive halving, Hyperband, or none [default: sha].")
@click.option("--backend", type=click.Choice(["local", "ray"]), default=None, help="local worker processes, or Ray Tune [default: local].")
@click.option("--workers", type=int, default=None, help="Trials at the same time [default: 1].")
@click.option("--address", default=None, help="Ray cluster address (auto, host:6379, ray://host:10001); default: a local Ray instance.")
@click.option("--gpus-per-trial", type=float, default=None, help="Ray: GPUs per trial (default: 1 when the cluster has GPUs).")
@click.option("--cpus-per-trial", type=float, default=None, help="Ray: CPUs per trial [default: 1].")
@click.option("--storage", default=None, help="Optuna storage URL of a shared study (default: study.db in the search folder).")
@click.option("--study-name", default=None, help="Study name (default: the search folder's name).")
@click.option("--finalists", type=int, default=None, help="Pareto-front trials to export and time [default: 3].")
@click.option("--formats", default=None, help="Latency formats of the finalists, e.g. openvino-int8,onnx or torch (default: the target's).")
@click.option("--max-latency-ms", type=float, default=None, help="Choose the best finalist at most this slow (batch 1, this machine).")
@click.option("--bench-seconds", type=float, default=None, help="Minimum seconds per latency measurement [default: 1].")
@click.option("--threads", type=int, default=None, help="torch threads per trial.")
@click.option("--seed", type=int, default=None, help="Sampler seed [default: 0].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Search folder (default: runs/search/<task>-<target>).")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Continue the search in this folder (finished trials are kept; --budget, --workers, --backend may change).")
@click.option("--dry-run", is_flag=True, help="Print the space and the expected cost, and stop.")
@data_root_option
@json_option
def search_command(task: str | None, data: Path | None, target: str | None, budget: str | None, recipe: Path | None,
                   overrides: tuple[str, ...], models: str | None, top: int | None, strategies: str | None, lr_range: str | None,
                   lr_spread: str | None, sizes: str | None, augmentations: str | None, epochs: int | None, pruner: str | None,
                   backend: str | None, workers: int | None, address: str | None, gpus_per_trial: float | None,
                   cpus_per_trial: float | None, storage: str | None, study_name: str | None, finalists: int | None,
                   formats: str | None, max_latency_ms: float | None, bench_seconds: float | None, threads: int | None,
                   seed: int | None, out: Path | None, resume_dir: Path | None, dry_run: bool, data_root: Path | None,
                   as_json: bool) -> None:
    """Search models and transfer settings under a budget; keep what is accurate AND fast on the target.

    \b
    Trials are ordinary runs under the search folder (eval, benchmark, export work on them);
    Optuna (TPE) samples, a pruner stops weak trials per epoch, and the Pareto-front trials are
    exported in the target's format and timed. Writes leaderboard.{json,csv}, pareto.png, best.yaml.

    \b
    Examples:
      visiontl search --task classification --data data/hymenoptera_data --target edge --budget 20m
      visiontl search --recipe recipes/hymenoptera_progressive.yaml --target edge --budget 20m --dry-run
      visiontl search --recipe base.yaml --models timm:resnet18,timm:mobilenetv3_large_100 --budget 12 --workers 2
      visiontl search --recipe base.yaml --budget 40 --backend ray --address auto --workers 8
      visiontl search --resume runs/search/classification-edge
    """
    from visiontl.errors import ConfigError
    from visiontl.search import api

    lr_values = _floats(lr_range, "--lr")
    if lr_values is not None and len(lr_values) != 2:
        raise ConfigError(f"--lr '{lr_range}' needs two numbers LOW,HIGH.", fix="e.g. --lr 1e-4,1e-2")
    section: dict[str, Any] = {
        "target": target, "budget": budget, "models": _csv(models), "top": top, "strategies": _csv(strategies),
        "lr": lr_values, "lr_spread": _floats(lr_spread, "--lr-spread"), "sizes": _ints(sizes, "--sizes"),
        "augmentations": _csv(augmentations), "epochs": epochs, "pruner": pruner, "backend": backend, "workers": workers,
        "address": address, "gpus_per_trial": gpus_per_trial, "cpus_per_trial": cpus_per_trial, "storage": storage,
        "study_name": study_name, "finalists": finalists, "formats": _csv(formats), "max_latency_ms": max_latency_ms,
        "bench_seconds": bench_seconds, "threads": threads, "seed": seed,
    }
    if data_root is not None:
        import os

        # Worker processes and Ray trials read the data root from the environment.
        os.environ["VISIONTL_DATA_DIR"] = str(data_root.resolve())
    if resume_dir is not None:
        if task or data or recipe or overrides or out or dry_run:
            raise ConfigError("--resume continues a search as it was defined; it takes no --task, --data, --recipe, --set, --out or --dry-run.",
                              fix="change only --budget, --workers, --backend, --address, --finalists, --formats ...")
        result = api.resume(resume_dir, section=section, say=_say)
        _print_result(result, as_json)
        return
    plan = api.plan(task=task, data=data, recipe=recipe, overrides=list(overrides), section=section, out=out,
                    data_root=data_root.resolve() if data_root else None)
    if dry_run:
        if as_json:
            echo_json({"spec": plan.spec.as_dict(), "images": plan.images, "cost": plan.cost.__dict__})
        else:
            click.echo("\n".join(plan.lines()))
        return
    result = api.run(plan, say=_say)
    _print_result(result, as_json)


def _say(line: str) -> None:
    click.echo(line)


def _print_result(result: Any, as_json: bool) -> None:
    if as_json:
        echo_json({"out": str(result.out), "best": result.best, "files": {k: str(v) for k, v in result.files.items()},
                   "notes": result.notes, "trials": result.rows})
        return
    click.echo("")
    click.echo(result.table)
    click.echo("  > chosen, * Pareto front (finalists, deployment format), F finalist")
    for note in result.notes:
        click.echo(f"Note: {note}")
    if result.best is not None:
        click.echo(f"\nBest: trial {result.best['trial']}: {result.best['label']}: {result.best['metric']} {result.best['value']:.4f}"
                   + (f", {result.best['deploy_ms']:.2f} ms as {result.best['deploy_format']}" if result.best.get("deploy_ms") is not None else ""))
    for key, path in result.files.items():
        click.echo(f"{key:17s}{path}")


COMMANDS = [search_command]
