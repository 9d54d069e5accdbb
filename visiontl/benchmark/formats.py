"""The formats ``visiontl benchmark --formats`` can measure, and which precisions each runs.

``torch`` is PyTorch eager (``--precision`` is its autocast); the others are exports made by
:mod:`visiontl.export` (the same files ``visiontl export`` writes), run through their own
runtime. The ``-int8`` formats are quantised, so ``--precision`` does not apply to them.
No heavy import here: the CLI validates ``--formats`` before loading anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from visiontl.errors import ConfigError


@dataclass(frozen=True)
class BenchFormat:
    """One measurable format.

    Attributes:
        name: the ``--formats`` value.
        export: the :mod:`visiontl.export` format behind it (``None``: PyTorch eager).
        precisions: precisions it runs (``int8`` formats run only ``int8``).
        cpu_only: runs only on the CPU here.
    """

    name: str
    export: str | None
    precisions: tuple[str, ...]
    cpu_only: bool = True

    @property
    def quantized(self) -> bool:
        return self.precisions == ("int8",)

    def plan(self, requested: list[str]) -> tuple[list[str], list[str]]:
        """``(precisions to measure, requested precisions it does not run)``."""
        if self.quantized:
            return ["int8"], []
        return [p for p in requested if p in self.precisions], [p for p in requested if p not in self.precisions]


BENCH_FORMATS: dict[str, BenchFormat] = {
    "torch": BenchFormat("torch", None, ("fp32", "bf16", "fp16"), cpu_only=False),
    "torchscript": BenchFormat("torchscript", "torchscript", ("fp32", "bf16")),
    "onnx": BenchFormat("onnx", "onnx", ("fp32",)),
    "onnx-int8": BenchFormat("onnx-int8", "onnx", ("int8",)),
    "openvino": BenchFormat("openvino", "openvino", ("fp32", "bf16")),
    "openvino-int8": BenchFormat("openvino-int8", "openvino", ("int8",)),
}

PRECISIONS = ("fp32", "bf16", "fp16")


def parse_list(text: str, what: str, valid: tuple[str, ...] | None = None) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``, each checked against ``valid`` (did-you-mean on typos)."""
    from visiontl.ids import suggest

    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{what} is empty.", fix=f"give a comma-separated list{': ' + ', '.join(valid) if valid else ''}")
    for item in items:
        if valid is not None and item not in valid:
            close = suggest(item, valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"Unknown {what} '{item}'.{hint}", fix=f"use a comma-separated list of: {', '.join(valid)}")
    return list(dict.fromkeys(items))


def parse_formats(text: str) -> list[BenchFormat]:
    """``--formats`` -> :class:`BenchFormat` objects (``all`` = every format)."""
    if text.strip() == "all":
        return list(BENCH_FORMATS.values())
    return [BENCH_FORMATS[name] for name in parse_list(text, "format", tuple(BENCH_FORMATS))]


def parse_batches(text: str) -> list[int]:
    """``--batch 1,8`` -> ``[1, 8]``."""
    out: list[int] = []
    for item in parse_list(text, "batch size"):
        if not item.isdigit() or int(item) < 1:
            raise ConfigError(f"Batch size '{item}' is not a positive integer.", fix="e.g. --batch 1,8")
        out.append(int(item))
    return out


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``--input-size 224`` or ``224x160`` -> ``(h, w)``."""
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"Input size '{text}' is not N or HxW.", fix="e.g. --input-size 224 or --input-size 224x160")
    h = int(parts[0])
    return (h, int(parts[1]) if len(parts) == 2 else h)
