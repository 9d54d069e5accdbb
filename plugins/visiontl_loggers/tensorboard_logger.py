"""TensorBoard: every epoch's scalars as event files in ``<run>/tensorboard/``.

``tensorboard --logdir runs`` then shows every run side by side. Tags:

* ``loss/train``, ``loss/val``;
* ``val/<metric>`` for the task's validation metrics (``val/accuracy``, ``val/map`` ...);
* ``lr/<group>`` for the learning rate of every trainable group;
* ``phase/index`` and ``phase/trainable_params``: step functions that show where the plan
  unfroze groups;
* ``time/epoch_s``, ``time/train_s``, ``data/train_images``;
* text ``phases``: what each phase trained and what its freeze audit found.

The step is the 1-based global epoch. One writer per phase (closed at its end), so the files
are complete whenever a phase is; TensorBoard reads every file of the folder as one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl import hookimpl
from visiontl.contracts import PluginInfo
from visiontl_loggers.base import EventLogger, describe_phase, event, scalars, trainable_params

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.freeze.audit import AuditReport
    from visiontl.freeze.plan import Phase
    from visiontl.runs.layout import RunDir

FOLDER = "tensorboard"

#: Epoch-row keys with a tag of their own; validation metrics go under ``val/``.
TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "seconds": "time/epoch_s",
    "train_seconds": "time/train_s",
    "train_images": "data/train_images",
}


def tag_for(key: str) -> str:
    """The TensorBoard tag of an epoch-row key."""
    if key in TAGS:
        return TAGS[key]
    if key.startswith("lr_"):
        return f"lr/{key[3:]}"
    return f"val/{key}"


class TensorBoardLogger(EventLogger):
    """Writes ``<run>/tensorboard/events.out.tfevents.*`` through ``torch.utils.tensorboard``."""

    name = "tensorboard"
    fix = "check that the run folder is writable and that 'tensorboard' imports (pip install 'visiontl[logging]')"

    @hookimpl
    def visiontl_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            name="tensorboard",
            families=(),
            tasks=(),
            requires=("tensorboard>=2.14",),
            install_hint="pip install 'visiontl[logging]'",
            description="per-epoch scalars to <run>/tensorboard (tensorboard --logdir runs)",
        )

    def release(self, state: dict[str, Any]) -> None:
        if state.get("writer") is not None:
            state["writer"].close()

    def _writer(self, run: RunDir) -> Any:
        state = self.state(run)
        if state.get("writer") is None:
            from torch.utils.tensorboard import SummaryWriter

            state["writer"] = SummaryWriter(log_dir=str(Path(run.path) / FOLDER))
        return state["writer"]

    @hookimpl
    @event
    def visiontl_on_phase_start(self, run: RunDir, phase: Phase, index: int) -> None:
        state = self.state(run)
        state["phase_index"] = index
        self._writer(run).add_text("phases", describe_phase(phase, index), global_step=index)

    @hookimpl
    @event
    def visiontl_on_epoch_end(self, run: RunDir, phase: Phase, epoch: int, metrics: dict[str, Any]) -> None:
        writer = self._writer(run)
        for key, value in scalars(metrics).items():
            writer.add_scalar(tag_for(key), value, global_step=epoch)
        writer.add_scalar("phase/index", self.state(run).get("phase_index", 0), global_step=epoch)
        writer.add_scalar("phase/trainable_params", trainable_params(phase), global_step=epoch)
        writer.flush()

    @hookimpl
    @event
    def visiontl_on_phase_end(self, run: RunDir, phase: Phase, index: int, audit: AuditReport) -> None:
        writer = self._writer(run)
        verdict = "passed" if audit.ok else f"FAILED ({len(audit.changed)} tensors changed)"
        writer.add_text(
            "phases",
            f"phase {index + 1} '{phase.name}' ended; freeze audit {verdict}: "
            f"{audit.params_checked} frozen parameters and {audit.buffers_checked} BN buffers compared",
            global_step=index,
        )
        writer.close()
        self.forget(run)


plugin = TensorBoardLogger()
