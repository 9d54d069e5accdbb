"""Built-in logger plugins: per-epoch metrics to TensorBoard, a CSV event log, and MLflow.

Each logger is its own plugin in the ``visiontl`` entry-point group and listens to the event
hooks only (``visiontl_on_phase_start``, ``visiontl_on_epoch_end``,
``visiontl_on_phase_end``), exactly as a third party's logger would:

* ``tensorboard`` (:mod:`visiontl_loggers.tensorboard_logger`): ``<run>/tensorboard/`` event
  files; needs ``pip install 'visiontl[logging]'``;
* ``events_csv`` (:mod:`visiontl_loggers.csv_logger`): ``<run>/events.csv``, an append-only
  timeline in long format (phase boundaries, trainable groups, every epoch's scalars, freeze
  audits, wall-clock times);
* ``mlflow`` (:mod:`visiontl_loggers.mlflow_logger`): params, per-epoch metrics and run
  files to MLflow when it is installed.

All are on when their library is installed; ``VISIONTL_DISABLE_PLUGINS=tensorboard,mlflow``
turns loggers off by name. A logger that fails (full disk, unreachable tracking server) is
reported once as a warning and goes quiet for the rest of the run: training, checkpoints
and ``metrics.csv`` go on. ``VISIONTL_STRICT_LOGGERS=1`` makes such a failure stop the run
instead (CI). Nothing here imports torch, TensorBoard or MLflow at import time.
"""
