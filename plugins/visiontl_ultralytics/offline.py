"""Keeping Ultralytics off the network unless visiontl asks for a download.

Left to itself, Ultralytics reaches for the network in many places (ultralytics#7645 hung for
half an hour offline on the first two):

* at import, ``ONLINE = is_online()`` resolves two DNS names;
* ``check_font`` (dataset checks, every PIL-drawn plot) downloads ``Arial.ttf`` with a
  ``requests.head`` probe first;
* ``check_amp`` downloads ``yolo26n.pt`` on CUDA to compare fp16 with fp32;
* telemetry (``events``), the pip version check, requirement auto-updates, Sentry and the
  Platform/hub callbacks post or fetch when ``ONLINE`` and the settings allow it;
* ``safe_download`` retries model and dataset downloads.

Everything here goes through Ultralytics' own switches, not patches:

* ``YOLO_OFFLINE=1`` is set (unless the user set ``YOLO_OFFLINE`` already) before the plugin
  first imports Ultralytics: ``is_online()`` then answers ``False`` without a DNS query, so no
  telemetry, version check or auto-install starts, and any download Ultralytics would try on its
  own fails at once instead of waiting. visiontl downloads published weights itself, after a
  bounded reachability probe, inside :func:`network_allowed`;
* the trainer never calls ``check_det_dataset`` (the plugin gives it the dataset dict) and never
  validates a checkpoint file, so the font check of the dataset path never runs; plots that
  draw text with PIL are made only when the font is already on disk (:func:`can_draw_text`);
* AMP runs only on CUDA with ``train.precision: fp16``, where ``check_amp``'s download then
  fails at once (offline) and Ultralytics keeps AMP on with a warning;
* integration callbacks (Platform, ClearML, Comet, MLflow ...) are removed from visiontl's
  trainers after construction.

Nothing here imports Ultralytics at module import time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: The environment variable Ultralytics reads in ``is_online()``.
OFFLINE_ENV = "YOLO_OFFLINE"

FONT = "Arial.ttf"


def prepare_environment() -> None:
    """Set ``YOLO_OFFLINE=1`` unless the user chose a value: call before importing Ultralytics.

    Ultralytics computes its ``ONLINE`` constant when it is first imported, so this only has
    full effect when the plugin is the first to import it (the normal case in visiontl runs).
    """
    os.environ.setdefault(OFFLINE_ENV, "1")


def import_ultralytics() -> None:
    """Import Ultralytics after :func:`prepare_environment` (idempotent, cheap once done).

    Ultralytics replaces ``PIL.Image.open`` process-wide with a wrapper that, on a file PIL
    cannot identify, tries to pip-install ``pi-heif`` and then raises ``ModuleNotFoundError``
    instead of ``UnidentifiedImageError``. In a visiontl process that would turn every corrupt
    image in any dataset (not only YOLO ones) into a package installation attempt and an
    unexpected error, so the original ``Image.open`` is put back. (HEIC files are then
    unreadable, as they are to PIL itself: they are reported like any unreadable image.)
    """
    prepare_environment()
    import ultralytics  # noqa: F401 - imported for its side effect of loading the package

    restore_pil_open()


def restore_pil_open() -> None:
    """Undo Ultralytics' ``PIL.Image.open`` patch (see :func:`import_ultralytics`)."""
    import sys

    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is None:
        from ultralytics.utils import patches
    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is not original:
        Image.open = original


@contextmanager
def network_allowed() -> Iterator[None]:
    """Let Ultralytics' downloader run inside (visiontl has just probed the host)."""
    previous = os.environ.get(OFFLINE_ENV)
    os.environ[OFFLINE_ENV] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(OFFLINE_ENV, None)
        else:
            os.environ[OFFLINE_ENV] = previous


def font_on_disk(name: str = FONT) -> Path | None:
    """Where ``check_font`` would find ``name`` without downloading it, or ``None``.

    The same two places Ultralytics looks first: its config directory and matplotlib's list of
    installed fonts.
    """
    from matplotlib import font_manager
    from ultralytics.utils import USER_CONFIG_DIR

    own = Path(USER_CONFIG_DIR) / name
    if own.is_file():
        return own
    for font in font_manager.fontManager.ttflist:
        if name in font.fname and os.path.exists(font.fname):
            return Path(font.fname)
    return None


def can_draw_text() -> bool:
    """Whether Ultralytics' PIL plots (image mosaics with labels) can run without the network.

    Only when the font is already on disk: a training run never opens a connection, so the
    font is not fetched (Ultralytics would download it; copy ``Arial.ttf`` into Ultralytics'
    config directory to get the mosaics).
    """
    return font_on_disk() is not None


@dataclass
class _RegrantFilter(logging.Filter):
    """Drops Ultralytics' per-parameter "setting requires_grad=True for frozen layer" warnings.

    Ultralytics re-enables gradients on every parameter it did not freeze itself when a
    training starts; visiontl re-applies the phase right after (``build_optimizer``), so the
    warnings describe a state that never reaches an optimizer step. They are counted and
    reported once instead.
    """

    regranted: list[str] = field(default_factory=list)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "setting 'requires_grad=True' for frozen layer" in message:
            self.regranted.append(message.split("'")[3] if message.count("'") >= 4 else message)
            return False
        if message.startswith("Freezing layer '") or "engine/trainer: " in message:
            return False  # the per-layer list, and the argument dump (kept in args.yaml)
        return True


@contextmanager
def ultralytics_logging(verbose: bool) -> Iterator[_RegrantFilter]:
    """Ultralytics' log level inside: INFO (its progress bars and summaries) when ``verbose``,
    WARNING otherwise; yields the filter that counts re-granted gradients."""
    logger = logging.getLogger("ultralytics")
    previous = logger.level
    regrant = _RegrantFilter()
    logger.addFilter(regrant)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield regrant
    finally:
        logger.removeFilter(regrant)
        logger.setLevel(previous)
