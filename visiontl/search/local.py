"""The local backend: Optuna's ask-and-tell loop in one or more worker processes.

Each worker asks the study for a trial (TPE samples it, or a queued one is popped), trains
it through :func:`visiontl.search.trial.run_trial`, reports every epoch's value for the
pruner, and tells the study how it ended. Several workers share the study through its
storage (the SQLite file, or a database URL), one trial each at a time; a worker stops when
the budget is spent. One worker runs in this process (so that plugins registered by the
caller are used); more run as spawned processes that each build their own plugin manager.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visiontl.search import study as studies
from visiontl.search.budget import format_seconds
from visiontl.search.reporter import TrialStopped
from visiontl.search.space import describe_params
from visiontl.search.spec import SearchSpec
from visiontl.search.trial import TrialOutcome, run_trial

Say = Callable[[str], None]
#: A worker gives up after this many failed trials in a row (a broken setup, not bad luck).
MAX_CONSECUTIVE_FAILURES = 5


@dataclass
class Limits:
    """When workers stop: a trial count, an absolute deadline (``time.time()``), or both."""

    trials: int | None
    deadline: float | None

    def left(self, study: Any) -> str:
        """``budget left`` for progress lines."""
        if self.deadline is not None:
            return f"{format_seconds(self.deadline - time.time())} left"
        assert self.trials is not None
        return f"trial budget {studies.counted(study)}/{self.trials} started"

    def stop_reason(self, study: Any) -> str | None:
        if self.deadline is not None and time.time() >= self.deadline:
            return "the time budget is spent"
        if self.trials is not None:
            done = studies.counted(study)
            if done >= self.trials:
                return f"{done} trial(s) done or running (budget {self.trials})"
            if studies.failed(study) >= max(5, 2 * self.trials):
                return "too many trials failed (see the leaderboard's error column)"
        return None


def limits_for(spec: SearchSpec, study: Any) -> Limits:
    """The limits from the budget; a time budget counts what earlier sessions spent."""
    budget = spec.budget
    if budget.trials is not None:
        return Limits(budget.trials, None)
    assert budget.seconds is not None
    return Limits(None, time.time() + max(0.0, budget.seconds - studies.spent_seconds(study)))


class TrialFeed:
    """The epoch callback of one Optuna trial: report, print progress, prune, respect the deadline."""

    def __init__(self, spec: SearchSpec, study: Any, trial: Any, params: dict[str, Any], limits: Limits, say: Say) -> None:
        self.spec, self.study, self.trial, self.params, self.limits, self.say = spec, study, trial, params, limits, say
        self.label = describe_params(params, spec.space)

    def started(self, run_dir: Path) -> None:
        """The run directory exists: record it now, so a killed trial's run can be continued."""
        self.trial.set_user_attr("run_dir", str(run_dir))

    def replay(self, epoch: int, value: float, best: float, planned: int) -> None:
        """An epoch the interrupted run trained before: reported, not judged again."""
        self.trial.report(best, epoch)

    def __call__(self, epoch: int, value: float, best: float, planned: int) -> None:
        self.trial.report(best, epoch)
        self.trial.set_user_attr("heartbeat", time.time())
        search_best = studies.best_so_far(self.study, self.spec.higher_is_better)
        shown = f"{search_best[0]:.4f} (trial {search_best[1]})" if search_best else "-"
        self.say(f"trial {self.trial.number} epoch {epoch}/{planned} [{self.label}] "
                 f"{self.spec.metric} {value:.4f} (trial best {best:.4f}) | search best {shown} | {self.limits.left(self.study)}")
        if epoch < planned and self.trial.should_prune():  # after the last epoch there is nothing left to save
            raise TrialStopped("pruned", epoch)
        if self.limits.deadline is not None and time.time() >= self.limits.deadline and epoch < planned:
            raise TrialStopped("budget", epoch)


def work(spec: SearchSpec, limits: Limits, *, plugins: Any = None, say: Say = print, seed_offset: int = 0) -> int:
    """Run trials until the limits are reached. Returns the number of trials this worker ran."""
    study = studies.open_study(spec, seed_offset)
    ts = studies.states()
    ran = 0
    failures = 0
    while True:
        reason = limits.stop_reason(study)
        if reason is not None:
            say(f"worker {studies.worker_id()} stops: {reason}")
            return ran
        trial = study.ask()
        trial.set_user_attr("worker", studies.worker_id())
        params = spec.space.suggest(trial)
        feed = TrialFeed(spec, study, trial, params, limits, say)
        resume_run = trial.user_attrs.get("resume_run")
        say(f"trial {trial.number} starts: {feed.label}" + (f" (continues {resume_run})" if resume_run else ""))
        try:
            outcome = run_trial(spec, trial.number, params, feed, plugins=plugins,
                                resume_run=Path(resume_run) if resume_run else None, replay=feed.replay,
                                on_start=feed.started)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=ts.FAIL)
            raise
        tell(study, trial, outcome, spec)
        ran += 1
        failures = failures + 1 if outcome.state == "failed" else 0
        say(outcome_line(trial.number, outcome, spec, study))
        if failures >= MAX_CONSECUTIVE_FAILURES:
            say(f"worker {studies.worker_id()} stops: {failures} trials failed in a row")
            return ran


def tell(study: Any, trial: Any, outcome: TrialOutcome, spec: SearchSpec) -> None:
    """Record the outcome in the study (user attributes first: a finished trial is frozen)."""
    ts = studies.states()
    if outcome.run_dir is not None:
        trial.set_user_attr("run_dir", str(outcome.run_dir))
    trial.set_user_attr("epochs", outcome.epochs)
    trial.set_user_attr("seconds", round(outcome.seconds, 2))
    if outcome.error:
        trial.set_user_attr("error", outcome.error[:2000])
    if outcome.state == "complete":
        study.tell(trial, outcome.value)
    elif outcome.state in ("pruned", "stopped"):
        trial.set_user_attr("stop_reason", "budget" if outcome.state == "stopped" else "pruner")
        study.tell(trial, state=ts.PRUNED)
    else:
        study.tell(trial, state=ts.FAIL)


def outcome_line(number: int, outcome: TrialOutcome, spec: SearchSpec, study: Any) -> str:
    best = studies.best_so_far(study, spec.higher_is_better)
    tail = f" | search best {best[0]:.4f} (trial {best[1]})" if best else ""
    took = format_seconds(outcome.seconds)
    if outcome.state == "complete":
        return f"trial {number} complete: {spec.metric} {outcome.value:.4f} after {outcome.epochs} epoch(s) in {took}{tail}"
    if outcome.state == "pruned":
        return f"trial {number} pruned after epoch {outcome.epochs} (best {spec.metric} {outcome.value:.4f}) in {took}{tail}"
    if outcome.state == "stopped":
        return f"trial {number} stopped by the time budget after epoch {outcome.epochs} in {took}{tail}"
    return f"trial {number} failed in {took}: {outcome.error}{tail}"


def run_local(spec: SearchSpec, *, plugins: Any = None, say: Say = print) -> None:
    """Run the search's trials on this machine with ``spec.settings.workers`` workers."""
    study = studies.open_study(spec)
    studies.recover(study, say)
    limits = limits_for(spec, study)
    workers = spec.settings.workers
    if workers <= 1:
        work(spec, limits, plugins=plugins, say=say)
        return
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's threads and locks
    procs = [ctx.Process(target=_worker_main, args=(str(spec.out), limits.trials, limits.deadline, i), daemon=False)
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(10)
        raise
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        say(f"{len(bad)} worker process(es) exited with an error (exit codes {bad}); the finished trials are kept")


def _worker_main(out: str, trials: int | None, deadline: float | None, index: int) -> None:
    """Entry point of a spawned worker process."""
    from visiontl import log

    log.configure(False)
    spec = SearchSpec.load(Path(out))
    work(spec, Limits(trials, deadline), say=lambda line: print(f"[worker {index}] {line}", flush=True), seed_offset=index)
