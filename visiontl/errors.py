"""One error hierarchy for everything visiontl reports to a user.

Every error carries a message that names the object at fault and, where one exists, a fix.
The CLI catches :class:`VisiontlError` once and prints ``str(error)`` as a single line; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class VisiontlError(Exception):
    """Base class of all errors visiontl raises on purpose.

    Args:
        message: what went wrong, naming the object at fault.
        fix: what the user can do about it (a command, a setting, an install line).
    """

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message} Fix: {self.fix}"
        return self.message


class ConfigError(VisiontlError):
    """A recipe or command-line option is invalid (unknown key, wrong type, bad value)."""


class UnknownModelError(VisiontlError):
    """A model id names no model that an installed plugin can build."""


class PluginError(VisiontlError):
    """No plugin answers a hook for the requested family, or a plugin misbehaved."""


class WeightsError(VisiontlError):
    """Pretrained weights could not be obtained (offline, missing file, incompatible)."""


class DataError(VisiontlError):
    """A dataset is missing, malformed, or has nothing usable left after skipping bad files."""


class FreezeError(VisiontlError):
    """Layer groups or a freezing plan are inconsistent with the model."""


class FreezeAuditError(FreezeError):
    """Parameters or BatchNorm buffers that were frozen changed during a phase."""


class RunError(VisiontlError):
    """A run directory or checkpoint cannot be used (missing, incomplete, incompatible)."""
