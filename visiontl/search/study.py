"""The Optuna study behind a search: storage, sampler, pruner, and recovery after a crash.

The study is the search's record: every trial's parameters, per-epoch values, state and the
run directory it trained. Both backends write to it (the Ray backend through Ray Tune's
``OptunaSearch`` on the same storage), so leaderboards, resumes and shared studies read one
place.

Recovery: a trial left ``RUNNING`` by a process that no longer exists (killed, crashed,
power cut) is marked failed and ``interrupted``, and its parameters are queued again, with
its run directory, so that the next worker continues that run from its last checkpoint.
A trial belongs to the ``host:pid`` that asked for it: on its own host a dead pid decides;
a trial of another host is given up once its heartbeat (a user attribute written at every
epoch's end) is older than :data:`STALE_S`.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from visiontl.search.spec import SearchSpec

INSTALL = "pip install 'visiontl[search]'"
#: Seconds after which a running trial of another host, silent since, counts as dead.
STALE_S = 3600.0
SPACE_ATTR = "visiontl_space"


def require_optuna() -> Any:
    """Import optuna, or say how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("visiontl search needs Optuna, which is not installed.", fix=INSTALL) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search prints its own lines
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def worker_id() -> str:
    """``host:pid`` of this process (the owner of the trials it asks for)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def storage(url: str) -> Any:
    """An Optuna storage for ``url`` (SQLite waits on locks instead of failing at once)."""
    optuna = require_optuna()
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as exc:  # noqa: BLE001 - a bad URL or an unreachable database: one clear line
        raise ConfigError(f"Cannot open the study storage '{url}': {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                          fix="check --storage (an SQLAlchemy URL such as sqlite:////abs/path.db or postgresql://user@host/db)") from None


def sampler(spec: SearchSpec, seed_offset: int = 0) -> Any:
    """TPE over the space; a parallel search uses the constant liar so that workers spread out."""
    optuna = require_optuna()
    settings = spec.settings
    budget = spec.budget
    startup = max(2, min(10, budget.trials // 3)) if budget.trials is not None else 5
    return optuna.samplers.TPESampler(
        seed=settings.seed + seed_offset, n_startup_trials=startup, multivariate=True, group=True,
        constant_liar=settings.workers > 1,
    )


def pruner(spec: SearchSpec) -> Any:
    """Successive halving or Hyperband on the per-epoch value, or none."""
    optuna = require_optuna()
    name = spec.settings.pruner
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, spec.space.epochs), reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(spec: SearchSpec, seed_offset: int = 0) -> optuna.Study:
    """Create or load the search's study, and check it samples the same space.

    Raises:
        ConfigError: the study exists with another space or direction (a shared study is
            only shared by identical searches).
    """
    optuna = require_optuna()
    study = optuna.create_study(storage=storage(spec.storage), study_name=spec.study_name, direction=spec.direction,
                                sampler=sampler(spec, seed_offset), pruner=pruner(spec), load_if_exists=True)
    check_space(study, spec)
    return study


def check_space(study: Any, spec: SearchSpec) -> None:
    """Record the space in a new study; refuse to mix another space into an existing one."""
    mine = {**spec.space.fingerprint(), "metric": spec.metric, "direction": spec.direction, "task": spec.task}
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is None:
        study.set_user_attr(SPACE_ATTR, mine)
        return
    if stored != mine:
        diff = sorted(k for k in set(stored) | set(mine) if stored.get(k) != mine.get(k))
        raise ConfigError(
            f"Study '{spec.study_name}' in {spec.storage} was created by another search (different {', '.join(diff)}).",
            fix="use another --study-name, or run every worker with the same options (or --resume the search folder)",
        )


def states() -> Any:
    return require_optuna().trial.TrialState


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def is_orphan(trial: Any) -> bool:
    """Whether a ``RUNNING`` trial's process is gone: its pid on its own host, or a
    heartbeat older than :data:`STALE_S` on another host."""
    import time

    owner = str(trial.user_attrs.get("worker", ""))
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return int(pid) != os.getpid() and not _pid_alive(int(pid))
    beat = trial.user_attrs.get("heartbeat")
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    return beat is not None and time.time() - float(beat) > STALE_S


def recover(study: Any, say: Callable[[str], None]) -> list[int]:
    """Fail the trials whose process died and queue them again (see the module docstring).

    Returns:
        The numbers of the trials queued again.
    """
    import shutil

    ts = states()
    storage_ = study._storage  # noqa: SLF001 - Optuna's public API has no way to fail another process's trial
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if trial.state == ts.RUNNING and is_orphan(trial):
            storage_.set_trial_user_attr(trial._trial_id, "interrupted", True)  # noqa: SLF001
            storage_.set_trial_state_values(trial._trial_id, ts.FAIL)  # noqa: SLF001
            say(f"trial {trial.number} was interrupted (its process {trial.user_attrs.get('worker')} is gone)")
    trials = study.get_trials(deepcopy=False)
    requeued = {t.user_attrs.get("resumes_trial") for t in trials}
    queued: list[int] = []
    for trial in trials:
        if trial.state != ts.FAIL or not trial.user_attrs.get("interrupted") or trial.number in requeued:
            continue
        run = trial.user_attrs.get("run_dir")
        attrs: dict[str, Any] = {"resumes_trial": trial.number}
        if run and (Path(run) / "checkpoints" / "last.pt").is_file() and not (Path(run) / "summary.json").is_file():
            attrs["resume_run"] = run
        elif run and Path(run).is_dir() and not (Path(run) / "metrics.csv").is_file():
            shutil.rmtree(run, ignore_errors=True)  # nothing trained yet: no orphan folder left behind
        study.enqueue_trial(dict(trial.params), user_attrs=attrs, skip_if_exists=False)
        queued.append(trial.number)
        say(f"trial {trial.number} queued again" + (f": continues {run} from its last checkpoint" if "resume_run" in attrs else ""))
    return queued


def counted(study: Any) -> int:
    """Trials that count against a trial budget: finished (complete or pruned) or running."""
    ts = states()
    return len(study.get_trials(deepcopy=False, states=(ts.COMPLETE, ts.PRUNED, ts.RUNNING)))


def failed(study: Any) -> int:
    ts = states()
    return len([t for t in study.get_trials(deepcopy=False, states=(ts.FAIL,)) if not t.user_attrs.get("interrupted")])


def spent_seconds(study: Any) -> float:
    """Wall-clock seconds the search has trained so far: the union of its trials' intervals
    (a trial still running, or killed, ends at its run directory's latest write)."""
    import datetime as dt

    spans: list[tuple[float, float]] = []
    for trial in study.get_trials(deepcopy=False):
        if trial.datetime_start is None:
            continue
        start = trial.datetime_start.timestamp()
        end = trial.datetime_complete.timestamp() if trial.datetime_complete else None
        if end is None:
            run = trial.user_attrs.get("run_dir")
            files = [p for p in Path(run).rglob("*") if p.is_file()] if run and Path(run).is_dir() else []
            end = max((p.stat().st_mtime for p in files), default=start)
            if trial.state == states().RUNNING and not is_orphan(trial):
                end = dt.datetime.now().timestamp()
        spans.append((start, max(start, end)))
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(spans):
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        total += current_end - current_start
    return total


def best_so_far(study: Any, higher_is_better: bool) -> tuple[float, int] | None:
    """``(value, trial number)`` of the best complete trial, or ``None``."""
    ts = states()
    done = [t for t in study.get_trials(deepcopy=False, states=(ts.COMPLETE,)) if t.value is not None]
    if not done:
        return None
    best = max(done, key=lambda t: t.value if higher_is_better else -t.value)
    return float(best.value), best.number
