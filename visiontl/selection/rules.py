"""The transfer-strategy rules, made explicit.

The classic guidance from tutorials and courses, with the reason for each choice:

* under ~5k training images: feature extraction (train the head on frozen features) with
  strong augmentation: a whole backbone fine-tuned on so few images overfits;
* 5k-50k images: progressive fine-tuning (head, then the last stages, then everything) with
  discriminative learning rates: enough data to adapt the features, not to relearn them;
* over 50k images: full fine-tuning, with the stronger regularisation the task reads
  (classification: label smoothing, mixup): the data can move every layer;
* edge and mobile targets: export and post-training int8 quantisation, accuracy re-checked;
  only formats ``visiontl export`` has are advised, at a precision they take;
* large data, accuracy first, datacenter GPU: an ensemble of diverse architectures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from visiontl.selection.targets import Target

SMALL_DATA = 5_000
LARGE_DATA = 50_000


@dataclass
class Advice:
    """How to transfer, and why.

    Attributes:
        strategy: ``feature_extraction``, ``progressive`` or ``full``.
        augmentation: the augmentation preset.
        regularisation: extra recipe settings (``loss.label_smoothing`` ...).
        export: ``visiontl export`` formats for the target (only formats that exist).
        precision: deployment precision (the target's).
        export_precision: the ``--precision`` to export at (the target's when every advised
            format takes it, else ``fp32``).
        ensemble: whether an ensemble of the top candidates is suggested.
        reasons: one line per choice.
    """

    strategy: str
    augmentation: str
    regularisation: dict[str, float] = field(default_factory=dict)
    export: tuple[str, ...] = ()
    precision: str = "fp32"
    ensemble: bool = False
    reasons: list[str] = field(default_factory=list)
    export_precision: str = "fp32"


def export_plan(target: Target) -> tuple[tuple[str, ...], str, list[str]]:
    """The target's export formats that ``visiontl export`` has, the precision to export them
    at, and the entries it left out (formats that do not exist here).

    A target entry is a format name (``onnx``) or ``format-precision`` (``onnx-int8``, as
    ``visiontl benchmark --formats`` writes it).

    Example:
        >>> from visiontl.selection.targets import get_target
        >>> export_plan(get_target("mobile"))[:2]
        (('onnx',), 'int8')
    """
    from visiontl.export.formats import FORMATS

    formats: list[str] = []
    dropped: list[str] = []
    for entry in target.export:
        name = entry if entry in FORMATS else entry.rsplit("-", 1)[0]
        if name not in FORMATS:
            dropped.append(entry)
        elif name not in formats:
            formats.append(name)
    takes = all(target.precision in FORMATS[f].precisions for f in formats)
    return tuple(formats), (target.precision if formats and takes else "fp32"), dropped


def advise(images: int | None, target: Target, priority: str, min_per_class: int | None = None,
           large_data_settings: Mapping[str, Any] | None = None) -> Advice:
    """The strategy for ``images`` training images on ``target`` with a ``priority``.

    Args:
        large_data_settings: the recipe settings the task advises for full fine-tuning on
            large data (``TaskAdapter.large_data_settings``); none when ``None``.
    """
    reasons: list[str] = []
    regularisation: dict[str, Any] = {}
    if images is None:
        strategy, augmentation = "progressive", "standard"
        reasons.append("dataset size unknown (give --images or --data): progressive fine-tuning is the safe default")
    elif images < SMALL_DATA:
        strategy, augmentation = "feature_extraction", "strong"
        reasons.append(f"{images:,} images < {SMALL_DATA:,}: feature extraction with strong augmentation; fine-tuning a whole backbone on so few images overfits")
    elif images < LARGE_DATA:
        strategy, augmentation = "progressive", "standard"
        reasons.append(f"{images:,} images in {SMALL_DATA:,}-{LARGE_DATA:,}: progressive fine-tuning with discriminative learning rates adapts the features without forgetting them")
    else:
        strategy, augmentation = "full", "standard"
        regularisation = dict(large_data_settings or {})
        extra = f" with stronger regularisation ({_settings_text(regularisation)})" if regularisation else ""
        reasons.append(f"{images:,} images > {LARGE_DATA:,}: full fine-tuning{extra}; the data can move every layer")
    if min_per_class is not None and min_per_class < 20:
        reasons.append(f"only {min_per_class} images in the smallest class: expect noisy results; collect more or use --probe to compare backbones cheaply")
    export, export_precision, dropped = export_plan(target)
    others = f", or --format {' / '.join(export[1:])}" if len(export) > 1 else ""
    command = f"visiontl export RUN --format {export[0]} --precision {export_precision}{others}" if export else ""
    if export and export_precision == "int8":
        reasons.append(f"{target.name} target: export ({', '.join(export)}) with post-training int8 quantisation calibrated on ~100 of your images "
                       f"({command}); the export is verified against PyTorch")
    elif export:
        why = "" if export_precision == target.precision else f"; {target.precision} is the deployment runtime's to apply (no export here takes it)"
        reasons.append(f"{target.name} target: export to {', '.join(export)} ({command}){why}")
    if dropped:
        reasons.append(f"{target.name} target also lists {', '.join(dropped)}, which visiontl export does not have: not advised")
    ensemble = images is not None and images >= LARGE_DATA and priority == "accuracy" and target.name == "cloud"
    if ensemble:
        reasons.append("large data, accuracy first, datacenter GPU: ensemble the top 2-3 diverse candidates (softmax averaging), or distil the ensemble into one model if latency matters")
    return Advice(strategy, augmentation, regularisation, export, target.precision, ensemble, reasons, export_precision)


def _settings_text(settings: Mapping[str, Any]) -> str:
    """``{"loss.label_smoothing": 0.1}`` -> ``label smoothing 0.1``."""
    return ", ".join(f"{key.rpartition('.')[2].replace('_', ' ')} {value}" for key, value in settings.items())
