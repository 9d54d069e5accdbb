"""The export formats: what each one is, what it needs installed, which precisions it takes.

Plain data and cheap checks only (no torch, no runtime imported here), so the CLI can list
and validate formats without paying for the heavy libraries.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from visiontl.export.errors import ExportError

INSTALL_EXPORT = "pip install 'visiontl[export]'"


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: the ``--format`` value.
        suffix: the main file's suffix.
        precisions: the ``--precision`` values it supports.
        requires: importable modules it needs (checked with ``importlib.util.find_spec``).
        runtime: what runs it (for tables and docs).
        description: one line.
    """

    name: str
    suffix: str
    precisions: tuple[str, ...]
    requires: tuple[str, ...]
    runtime: str
    description: str


FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat(
        "onnx", ".onnx", ("fp32", "int8"), ("onnx", "onnxruntime"), "ONNX Runtime (CPUExecutionProvider)",
        "ONNX graph with a dynamic batch axis; int8 is ONNX Runtime static QDQ quantisation calibrated on images",
    ),
    "openvino": ExportFormat(
        "openvino", ".xml", ("fp32", "bf16", "int8"), ("openvino",), "OpenVINO Runtime (CPU)",
        "OpenVINO IR (.xml + .bin); bf16 is the CPU plugin's inference precision, int8 is NNCF post-training quantisation",
    ),
    "torchscript": ExportFormat(
        "torchscript", ".pt", ("fp32", "bf16"), (), "torch.jit (TorchScript)",
        "a traced TorchScript module (torch.jit.trace, frozen for inference); bf16 casts the weights",
    ),
}

#: Extra modules a precision needs on top of its format's.
PRECISION_REQUIRES: dict[tuple[str, str], tuple[str, ...]] = {
    ("openvino", "int8"): ("nncf",),
}


def get_format(name: str) -> ExportFormat:
    """The format called ``name``, or an :class:`ExportError` listing the valid ones."""
    from visiontl.ids import suggest

    if name in FORMATS:
        return FORMATS[name]
    close = suggest(name, FORMATS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ExportError(f"Unknown export format '{name}'.{hint}", fix=f"use one of: {', '.join(FORMATS)}")


def check_precision(fmt: ExportFormat, precision: str) -> None:
    """Raise an :class:`ExportError` when ``fmt`` does not take ``precision``."""
    if precision not in fmt.precisions:
        others = [f.name for f in FORMATS.values() if precision in f.precisions]
        raise ExportError(
            f"The {fmt.name} export supports precisions {', '.join(fmt.precisions)}, not '{precision}'.",
            fix=f"use --precision {' or '.join(fmt.precisions)}" + (f", or --format {' / '.join(others)} for {precision}" if others else ""),
        )


def missing_modules(fmt: ExportFormat, precision: str = "fp32") -> list[str]:
    """Modules ``fmt`` at ``precision`` needs that are not installed."""
    needed = (*fmt.requires, *PRECISION_REQUIRES.get((fmt.name, precision), ()))
    return [m for m in needed if importlib.util.find_spec(m) is None]


def require(fmt: ExportFormat, precision: str = "fp32") -> None:
    """Raise an :class:`ExportError` naming the missing packages and the install line."""
    missing = missing_modules(fmt, precision)
    if missing:
        raise ExportError(
            f"The {fmt.name} {precision} export needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed.",
            fix=f"{INSTALL_EXPORT} (or: pip install {' '.join(missing)})",
        )
