"""The transfer-strategy rules, made explicit.

The classic guidance from tutorials and courses, with the reason for each choice:

* under ~5k training images: feature extraction (train the head on frozen features) with
  strong augmentation: a whole backbone fine-tuned on so few images overfits;
* 5k-50k images: progressive fine-tuning (head, then the last stages, then everything) with
  discriminative learning rates: enough data to adapt the features, not to relearn them;
* over 50k images: full fine-tuning with stronger regularisation (label smoothing, mixup):
  the data can move every layer;
* edge and mobile targets: export and post-training int8 quantisation, accuracy re-checked;
* large data, accuracy first, datacenter GPU: an ensemble of diverse architectures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
        export: export formats for the target.
        precision: deployment precision.
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


def advise(images: int | None, target: Target, priority: str, min_per_class: int | None = None) -> Advice:
    """The strategy for ``images`` training images on ``target`` with a ``priority``."""
    reasons: list[str] = []
    regularisation: dict[str, float] = {}
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
        regularisation = {"loss.label_smoothing": 0.1, "augmentation.mixup": 0.2}
        reasons.append(f"{images:,} images > {LARGE_DATA:,}: full fine-tuning with stronger regularisation (label smoothing 0.1, mixup 0.2)")
    if min_per_class is not None and min_per_class < 20:
        reasons.append(f"only {min_per_class} images in the smallest class: expect noisy results; collect more or use --probe to compare backbones cheaply")
    export = target.export
    if target.precision == "int8":
        reasons.append(f"{target.name} target: export ({', '.join(export)}) with post-training int8 quantisation calibrated on ~100 of your images; re-check accuracy after")
    elif export:
        reasons.append(f"{target.name} target: export to {', '.join(export)} ({target.precision})")
    ensemble = images is not None and images >= LARGE_DATA and priority == "accuracy" and target.name == "cloud"
    if ensemble:
        reasons.append("large data, accuracy first, datacenter GPU: ensemble the top 2-3 diverse candidates (softmax averaging), or distil the ensemble into one model if latency matters")
    return Advice(strategy, augmentation, regularisation, tuple(export), target.precision, ensemble, reasons)
