"""The error every export and runtime problem is reported with."""

from __future__ import annotations

from visiontl.errors import VisiontlError


class ExportError(VisiontlError):
    """A model cannot be exported, quantised, loaded or verified in the requested format.

    The message names the model, the format and the reason; ``fix`` says what to do
    (another format, a missing package, a model that traces).
    """
