"""The Ray backend: trials as Ray Tune trials, on a running cluster or a local Ray instance.

* Sampling: Ray Tune's ``OptunaSearch`` with the search's TPE sampler, on the search's own
  study storage (the SQLite file in the search folder, on the driver), so the study records
  every trial exactly as the local backend does and ``--resume`` works the same way.
* Pruning: Ray's schedulers, fed by the same per-epoch reports (``tune.report`` from the
  ``visiontl_on_epoch_end`` event): ASHA (asynchronous successive halving) for ``sha``,
  asynchronous Hyperband for ``hyperband``.
* Resources: one trial per worker (``max_concurrent_trials``), ``cpus_per_trial`` CPUs and,
  when the cluster has GPUs, one GPU each (``gpus_per_trial``); Ray sets each trial's
  ``CUDA_VISIBLE_DEVICES`` and the trial's ``device: auto`` picks it up.

Each trial trains through :func:`visiontl.search.trial.run_trial` in a Ray worker process:
visiontl (and the plugins the trials need) must be installed on every node, and the search
folder and the data must be at the same paths on every node (a shared file system) when
the cluster has more than one node.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from visiontl.errors import ConfigError
from visiontl.search import study as studies
from visiontl.search.space import PARAMS, describe_params
from visiontl.search.spec import SearchSpec

Say = Callable[[str], None]
INSTALL = "pip install 'visiontl[search]'  (brings ray[tune])"
SCORE = "score"  # the best value so far: what the scheduler and the searcher compare


def require_ray() -> Any:
    try:
        import ray
        from ray import tune  # noqa: F401 - ray[tune] is the part needed
    except ImportError:
        raise ConfigError("--backend ray needs Ray Tune, which is not installed.", fix=INSTALL) from None
    return ray


def ray_trial(config: dict[str, Any], spec_data: dict[str, Any], deadline: float | None) -> None:
    """The Tune trainable: one trial in a Ray worker (reports every epoch, then a final result)."""
    from ray import tune

    from visiontl.search.reporter import TrialStopped
    from visiontl.search.trial import run_trial

    spec = SearchSpec.from_dict(spec_data)
    number = int(config["trial_number"])
    params = {k: config[k] for k in PARAMS if k in config}
    label = describe_params(params, spec.space)
    run_dir: dict[str, str] = {}

    def on_start(path: Path) -> None:
        run_dir["path"] = str(path)

    def report(epoch: int, value: float, best: float, planned: int) -> None:
        tune.report({SCORE: best, "value": value, "epoch": epoch, "run_dir": run_dir.get("path", "")})

    def on_epoch(epoch: int, value: float, best: float, planned: int) -> None:
        left = f" | {max(0.0, deadline - time.time()):.0f}s left" if deadline is not None else ""
        print(f"trial {number} epoch {epoch}/{planned} [{label}] {spec.metric} {value:.4f} (trial best {best:.4f}){left}", flush=True)
        if epoch < planned:
            # The last epoch is reported once the run is written (below): a scheduler that
            # stops a trial at a report stops its process there, before summary.json.
            report(epoch, value, best, planned)
        if deadline is not None and time.time() >= deadline and epoch < planned:
            raise TrialStopped("budget", epoch)

    resume_run = config.get("resume_run")
    print(f"trial {number} starts: {label}" + (f" (continues {resume_run})" if resume_run else ""), flush=True)
    outcome = run_trial(spec, number, params, on_epoch, resume_run=Path(resume_run) if resume_run else None, replay=report,
                        on_start=on_start)
    # The final result says how the trial ended (the searcher records it); for a complete
    # trial it is also its last epoch's report.
    tune.report({SCORE: outcome.value if outcome.value is not None else float("nan"), "epoch": outcome.epochs,
                 "run_dir": str(outcome.run_dir or ""), "state": outcome.state, "error": outcome.error or "",
                 "seconds": outcome.seconds})


def _searcher_class() -> Any:
    from optuna.trial import TrialState
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    class StudySearch(OptunaSearch):
        """OptunaSearch that records how each trial really ended (complete, pruned by the
        scheduler, stopped by the budget, failed) and its run directory, and stops asking
        for trials once the time budget is spent."""

        def __init__(self, *args: Any, spec: SearchSpec, deadline: float | None, say: Say, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.spec, self.deadline, self.say = spec, deadline, say

        def save(self, checkpoint_path: str) -> None:
            # The study (in the search's storage) is the record a resumed search reads; Tune's
            # own experiment checkpoint of the searcher is not needed (and the sampler's
            # callbacks would not pickle).
            raise NotImplementedError

        def suggest(self, trial_id: str) -> Any:
            if self.deadline is not None and time.time() >= self.deadline:
                return Searcher.FINISHED
            return super().suggest(trial_id)

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            super().on_trial_result(trial_id, result)
            trial = self._ot_trials.get(trial_id)
            if trial is not None and result.get("run_dir"):
                trial.set_user_attr("run_dir", result["run_dir"])
                trial.set_user_attr("heartbeat", time.time())

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
            from visiontl.search.trial import mark_run

            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            trial = self._ot_trials[trial_id]
            study: Any = self._ot_study  # set up by OptunaSearch before any trial exists
            result = result or {}
            state = result.get("state")
            run = result.get("run_dir") or trial.user_attrs.get("run_dir")
            if run:
                trial.set_user_attr("run_dir", run)
            trial.set_user_attr("epochs", int(result.get("epoch") or 0))
            if result.get("seconds") is not None:
                trial.set_user_attr("seconds", round(float(result["seconds"]), 2))
            if error or state == "failed":
                trial.set_user_attr("error", (result.get("error") or "the Ray trial raised (see its log in the search's ray/ folder)")[:2000])
                study.tell(trial, state=TrialState.FAIL)
            elif state == "complete":
                study.tell(trial, float(result[SCORE]))
            else:
                # Stopped by the scheduler (no final result) or by the time budget.
                reason = "budget" if state == "stopped" else "pruner"
                trial.set_user_attr("stop_reason", reason)
                if run and state is None:
                    mark_run(Path(run), "pruned", "the scheduler (ASHA/Hyperband) stopped it: its validation metric was behind other trials'",
                             int(result.get("epoch") or 0), self.spec)
                study.tell(trial, state=TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            best = studies.best_so_far(study, self.spec.higher_is_better)
            shown = f"{best[0]:.4f} (trial {best[1]})" if best else "-"
            self.say(f"trial {trial.number} {'failed' if error or state == 'failed' else state or 'pruned'}"
                     f" after {result.get('epoch', 0)} epoch(s) | search best {shown}")

    return StudySearch


class DefineTrial:
    """The define-by-run space given to ``OptunaSearch`` (a class, so Ray can pickle it)."""

    def __init__(self, spec: SearchSpec) -> None:
        self.space = spec.space

    def __call__(self, trial: Any) -> dict[str, Any]:
        trial.set_user_attr("worker", studies.worker_id())  # the driver owns the study's record of it
        self.space.suggest(trial)
        extra: dict[str, Any] = {"trial_number": trial.number}
        if trial.user_attrs.get("resume_run"):
            extra["resume_run"] = trial.user_attrs["resume_run"]
        return extra


def _scheduler(spec: SearchSpec, mode: str) -> Any:
    from ray.tune.schedulers import ASHAScheduler, AsyncHyperBandScheduler, FIFOScheduler

    name = spec.settings.pruner
    max_t = max(spec.space.epochs, 3)  # a progressive plan has at least three epochs
    if name == "sha":
        return ASHAScheduler(metric=SCORE, mode=mode, time_attr="training_iteration", max_t=max_t, grace_period=1, reduction_factor=3)
    if name == "hyperband":
        return AsyncHyperBandScheduler(metric=SCORE, mode=mode, time_attr="training_iteration", max_t=max_t, grace_period=1,
                                       reduction_factor=3, brackets=3)
    return FIFOScheduler()


def _init(spec: SearchSpec) -> Any:
    from visiontl import env

    ray = require_ray()
    settings = spec.settings
    env_vars = {"VISIONTL_DATA_DIR": str(Path(spec.data_root) if spec.data_root else env.data_root())}
    for name in ("VISIONTL_DISABLE_PLUGINS", "VISIONTL_CACHE_DIR", "MPLBACKEND"):
        if os.environ.get(name):
            env_vars[name] = os.environ[name]
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "runtime_env": {"env_vars": env_vars},
                              "ignore_reinit_error": True, "logging_level": "WARNING"}
    if settings.address:
        kwargs["address"] = settings.address
    else:
        # A local instance sized for the search: one trial per worker, reachable on the
        # loopback only (a local search opens no port on the machine's network interfaces).
        kwargs["num_cpus"] = max(1, int(round(settings.workers * settings.cpus_per_trial)))
        kwargs["_node_ip_address"] = "127.0.0.1"
    # Ray reports usage statistics to its authors unless told not to: a search sends nothing.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise ConfigError(f"Cannot reach the Ray cluster at '{settings.address}': {exc}",
                          fix="start it with: ray start --head (then --address auto), or leave out --address for a local instance") from None
    return ray


def run_ray(spec: SearchSpec, *, say: Say = print) -> None:
    """Run the search's trials on Ray until the budget is spent."""
    ray = _init(spec)
    from ray import tune

    settings = spec.settings
    study = studies.open_study(spec)
    studies.recover(study, say)
    budget = spec.budget
    deadline = None
    num_samples = -1
    if budget.trials is not None:
        num_samples = budget.trials - studies.counted(study)
        if num_samples <= 0:
            say(f"the budget of {budget.trials} trial(s) is already spent")
            ray.shutdown()
            return
    else:
        assert budget.seconds is not None
        deadline = time.time() + max(0.0, budget.seconds - studies.spent_seconds(study))
    gpus = settings.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    mode = "max" if spec.higher_is_better else "min"

    searcher = _searcher_class()(space=DefineTrial(spec), metric=SCORE, mode=mode, sampler=studies.sampler(spec),
                                 study_name=spec.study_name, storage=studies.storage(spec.storage), spec=spec, deadline=deadline, say=say)
    trainable = tune.with_resources(tune.with_parameters(ray_trial, spec_data=spec.as_dict(), deadline=deadline),
                                    {"cpu": settings.cpus_per_trial, "gpu": gpus})
    say(f"Ray: {settings.workers} trial(s) at a time, {settings.cpus_per_trial:g} CPU and {gpus:g} GPU each, on "
        f"{settings.address or 'a local Ray instance'}; {ray.cluster_resources().get('CPU', 0):g} CPUs in the cluster")
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=_scheduler(spec, mode), num_samples=num_samples,
                                    max_concurrent_trials=settings.workers, reuse_actors=False),
        run_config=tune.RunConfig(name="tune", storage_path=str((spec.out / "ray").resolve()), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    try:
        tuner.fit()
    finally:
        ray.shutdown()
