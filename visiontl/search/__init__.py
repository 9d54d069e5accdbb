"""``visiontl search``: a budgeted, latency-aware transfer search on one machine or a Ray cluster.

The space comes from the selection engine (candidates within the target's latency budget,
the advised strategies and their neighbours, learning rates, input sizes, augmentation);
Optuna's TPE samples it, a successive-halving or Hyperband pruner stops weak trials on their
per-epoch validation metric (fed by the ``visiontl_on_epoch_end`` event), every trial is an
ordinary run directory, and the finalists are exported and timed for the target.

Modules: :mod:`~visiontl.search.section` (the ``search:`` recipe section),
:mod:`~visiontl.search.budget`, :mod:`~visiontl.search.space`, :mod:`~visiontl.search.propose`,
:mod:`~visiontl.search.cost`, :mod:`~visiontl.search.spec`, :mod:`~visiontl.search.study`,
:mod:`~visiontl.search.reporter`, :mod:`~visiontl.search.trial`, :mod:`~visiontl.search.local`,
:mod:`~visiontl.search.ray_backend`, :mod:`~visiontl.search.finalists`,
:mod:`~visiontl.search.leaderboard`, :mod:`~visiontl.search.plot`, :mod:`~visiontl.search.best`,
and the API in :mod:`~visiontl.search.api`. Importing this package imports none of them
(nor torch, optuna or ray).
"""

from __future__ import annotations

from typing import Any

__all__ = ["plan", "run", "resume", "finish"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from visiontl.search import api

        return getattr(api, name)
    raise AttributeError(f"module 'visiontl.search' has no attribute {name!r}")
