"""Environment settings read in one place."""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """Where recipes' relative dataset and weight paths point: ``$VISIONTL_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("VISIONTL_DATA_DIR", "data")).expanduser().resolve()
