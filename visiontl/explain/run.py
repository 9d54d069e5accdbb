"""``visiontl explain``'s work: CAM overlays for a list of images, next to the run.

For each image: one PNG (the picture and its CAM side by side, captioned with the class,
score, method and target layer) in ``<run>/explain/`` by default, and a row in
``explain.json``. With ground-truth masks, each row also holds the share of CAM energy
inside the mask, and the report the mean against its chance level.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from visiontl.explain.score import MaskScore
    from visiontl.plugin_manager import Plugins


@dataclass
class Explanation:
    """What was explained for one image file (or why it could not be).

    Attributes:
        path: the image file.
        overlay: the PNG written.
        class_name: the explained class (``None``: every detection, class-agnostic).
        score: the class's probability, predicted area share or best detection score.
        peak: ``(row, column)`` of the CAM's maximum in the model's frame.
        energy: share of CAM energy inside the mask (with masks).
        area: share of the model's frame inside the mask (with masks): the chance level.
        error: why the file was not explained.
    """

    path: str
    overlay: str | None = None
    class_name: str | None = None
    score: float | None = None
    peak: tuple[int, int] | None = None
    energy: float | None = None
    area: float | None = None
    error: str | None = None


@dataclass
class ExplainReport:
    """The result of :func:`explain`.

    Attributes:
        items: one :class:`Explanation` per image file.
        out_dir: where the PNGs and ``explain.json`` are.
        method: the CAM method.
        layer: the target layer (``stage4 (layer4)``).
        masks: the energy-in-mask score, when masks were given.
    """

    items: list[Explanation] = field(default_factory=list)
    out_dir: Path = Path(".")
    method: str = ""
    layer: str = ""
    masks: MaskScore | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "layer": self.layer,
            "out_dir": str(self.out_dir),
            "images": [asdict(i) for i in self.items],
            "masks": self.masks.as_dict() if self.masks is not None else None,
        }


def default_out_dir(target: Path) -> Path:
    """``<run>/explain`` for a run directory or a checkpoint inside one, else
    ``<folder of the file>/explain``."""
    if target.is_dir():
        return target / "explain"
    if target.parent.name == "checkpoints":
        return target.parent.parent / "explain"
    return target.parent / "explain"


def explain(
    target: str | Path,
    images: Sequence[str | Path],
    *,
    target_class: str | None = None,
    method: str | None = None,
    layer: str | None = None,
    out_dir: str | Path | None = None,
    masks: str | Path | None = None,
    object_values: Sequence[int] | None = None,
    score_threshold: float | None = None,
    plugins: Plugins | None = None,
) -> ExplainReport:
    """Write CAM overlays for ``images`` explained by a trained run or checkpoint.

    Args:
        target: a run directory or checkpoint (classification, segmentation, detection,
            instance segmentation).
        images: image files and/or folders (expanded to their images).
        target_class: the class to explain (default: the predicted one; detection: every
            detection above the score threshold).
        method: a CAM method (:data:`visiontl.explain.cam.METHODS`); default ``gradcam``,
            ``eigencam`` for detection.
        layer: a layer group (``stage3``) or module path; default: the last ``stage`` group.
        out_dir: folder for the PNGs and ``explain.json`` (default: ``<run>/explain``).
        masks: a folder of ground-truth masks named like the images: adds the share of CAM
            energy inside each mask (:mod:`visiontl.explain.score`).
        object_values: stored mask values that are the object (default: a segmentation run's
            class map and the explained class; others: every value but 0 and 255).
        score_threshold: lowest detection score explained (default: the recipe's).

    Returns:
        An :class:`ExplainReport`.

    Example:
        >>> report = explain("runs/classification/hymenoptera", ["bee.jpg"])  # doctest: +SKIP
        >>> report.items[0].overlay  # doctest: +SKIP
        'runs/classification/hymenoptera/explain/bee.png'
    """
    from visiontl.data.images import UnreadableImage, load_rgb
    from visiontl.errors import DataError
    from visiontl.explain.cam import Explainer, unique_path
    from visiontl.explain.overlay import render
    from visiontl.explain.score import MaskScore, ObjectRule, add_image, expand_images, match_masks
    from visiontl.explain.views import NothingToExplain
    from visiontl.runs.layout import atomic_write_text
    from visiontl.trained import load_trained

    target = Path(target)
    loaded = load_trained(target, plugins)
    explainer = Explainer.from_loaded(loaded, method=method, layer=layer, score_threshold=score_threshold, plugins=plugins)
    files = expand_images(images)
    if not files:
        raise DataError(f"No image files in {', '.join(str(i) for i in images)}.", fix="pass image files or folders that hold images")
    folder = Path(out_dir) if out_dir is not None else default_out_dir(target)
    folder.mkdir(parents=True, exist_ok=True)
    mask_files = match_masks(files, masks) if masks is not None else [None] * len(files)
    report = ExplainReport(out_dir=folder, method=explainer.method, layer=explainer.target.describe())
    score = MaskScore(method=explainer.method, layer=report.layer) if masks is not None else None
    rule = ObjectRule.for_model(loaded, object_values)
    used: set[str] = set()
    for path, mask_path in zip(files, mask_files, strict=True):
        item = Explanation(str(path))
        report.items.append(item)
        try:
            image = load_rgb(path)
            result = explainer.explain(image, target_class)
        except (UnreadableImage, NothingToExplain) as exc:
            item.error = str(exc)
            if score is not None:
                score.skipped[str(path)] = item.error
            continue
        item.class_name, item.score, item.peak = result.class_name, result.score, result.peak
        if score is not None:
            row = add_image(score, path, mask_path, (image.height, image.width), result, rule)
            if row is not None:
                item.energy, item.area = row.energy, row.area
        png = unique_path(folder, path.stem, used)
        render(result, item.energy).save(png)
        item.overlay = str(png)
    report.masks = score
    atomic_write_text(folder / "explain.json", json.dumps(report.as_dict(), indent=2) + "\n")
    return report

