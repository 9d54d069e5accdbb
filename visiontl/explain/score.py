"""A measurable interpretability score: the share of CAM energy inside the object's mask.

Where ground-truth masks exist (PennFudan's ``masks/*.png``: 0 background, 1 person), a CAM
that looks at the object puts most of its energy on the object's pixels:

    energy_in_mask = sum(cam * mask) / sum(cam)

computed on the CAM as drawn (ReLU, scaled to 0..1 per image), in the frame the model saw
(the mask goes through the same resize and crop as the image, nearest-neighbour). Its chance
level is the mask's share of the pixels (``area``): a map spread evenly scores exactly that.
The *pointing game* (Zhang et al., 2016) is reported too: the share of images whose CAM
peak falls inside the mask.

Which mask pixels are "the object" (:class:`ObjectRule`), first rule that applies:

1. ``object_values`` given (``--object-values``): pixels holding one of those stored values;
2. a semantic-segmentation run: the mask is decoded with the run's own class map
   (``data.value_map``, ``data.mask_colors``, ``data.ignore_index``) and the object is the
   pixels of the class explained in that image (``--target-class``, else the predicted one);
   other classes and ignored pixels are not object;
3. otherwise (a classifier or detector scored on binary masks): every value but 0 and 255.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visiontl.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from visiontl.explain.cam import Explainer
    from visiontl.plugin_manager import Plugins
    from visiontl.trained import LoadedModel

#: Mask value that marks unlabelled pixels (neither object nor background).
IGNORE_VALUE = 255


def energy_in_mask(cam: np.ndarray, mask: np.ndarray) -> float:
    """The share of ``cam``'s (non-negative) energy on the pixels where ``mask`` is true.

    Raises:
        ValueError: shapes differ, or the CAM is zero everywhere (the share is undefined).

    Example:
        >>> cam = np.array([[0.0, 1.0], [0.0, 3.0]])
        >>> energy_in_mask(cam, np.array([[False, False], [True, True]]))
        0.75
    """
    if cam.shape != mask.shape:
        raise ValueError(f"CAM {cam.shape} and mask {mask.shape} differ in shape")
    cam = np.clip(cam.astype(np.float64), 0.0, None)
    total = float(cam.sum())
    if total <= 0.0:
        raise ValueError("the CAM is zero everywhere")
    return float(cam[mask.astype(bool)].sum() / total)


@dataclass(frozen=True)
class ObjectRule:
    """Which pixels of a stored mask are the object explained (see the module docstring).

    Attributes:
        values: explicit stored values that are the object (rule 1).
        class_names: a segmentation run's classes, in label order (rule 2).
        decoder: that run's :class:`~visiontl.data.segmentation.masks.MaskDecoder`.
    """

    values: tuple[int, ...] | None = None
    class_names: tuple[str, ...] = ()
    decoder: Any = None

    @classmethod
    def for_model(cls, loaded: Any, object_values: Sequence[int] | None = None) -> ObjectRule:
        """The rule for a loaded model: explicit values, else its class map when it is a
        semantic-segmentation run that decodes masks, else the default."""
        if object_values is not None:
            return cls(values=tuple(int(v) for v in object_values))
        recipe = getattr(loaded, "recipe", None)
        data = getattr(recipe, "data", None)
        if getattr(loaded, "task", None) == "segmentation" and data is not None and data.format == "masks":
            from visiontl.data.segmentation.masks import MaskDecoder

            decoder = MaskDecoder(len(loaded.class_names), data.ignore_index, data.value_map,
                                  [tuple(c) for c in data.mask_colors] if data.mask_colors else None)
            return cls(class_names=tuple(loaded.class_names), decoder=decoder)
        return cls()

    def mask(self, stored: np.ndarray, class_name: str | None) -> np.ndarray:
        """Boolean object pixels of a stored mask for the image explained as ``class_name``."""
        if self.values is not None or self.decoder is None:
            return object_mask(stored, self.values)
        if class_name not in self.class_names:
            raise ValueError(f"class '{class_name}' is not one of the run's classes")
        labels = self.decoder.decode_values(np.asarray(stored)).labels
        return labels == self.class_names.index(class_name)


def object_mask(labels: np.ndarray, object_values: Sequence[int] | None = None) -> np.ndarray:
    """Object pixels of a label map: ``object_values`` (default: every value but 0 and 255).

    An RGB mask counts a pixel as object when any channel qualifies.
    """
    labels = np.asarray(labels)
    if object_values is not None:
        hit = np.isin(labels, list(object_values))
    else:
        hit = (labels != 0) & (labels != IGNORE_VALUE)
    return hit.any(axis=-1) if hit.ndim == 3 else hit


def _read_mask(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"Cannot read mask '{path}': {exc}") from None


def match_masks(images: Sequence[Path], masks: str | Path | Sequence[str | Path]) -> list[Path | None]:
    """The mask of each image: from a folder by file stem (any image extension), or a list in
    the images' order. ``None`` where the folder has no mask for an image.

    Raises:
        DataError: the folder does not exist, or the list's length differs from the images'.
    """
    from visiontl.data.images import is_image_file

    if isinstance(masks, (str, Path)):
        folder = Path(masks)
        if not folder.is_dir():
            raise DataError(f"Mask folder '{folder}' not found.", fix="pass the folder that holds one mask per image, named like the image")
        by_stem = {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and is_image_file(p)}
        return [by_stem.get(p.stem) for p in images]
    listed = [Path(m) for m in masks]
    if len(listed) != len(images):
        raise DataError(f"{len(listed)} masks for {len(images)} images.", fix="give one mask per image, or a mask folder")
    return list(listed)


def expand_images(images: str | Path | Sequence[str | Path]) -> list[Path]:
    """Image files: folders are expanded to the images inside them (sorted)."""
    from visiontl.data.images import is_image_file

    items = [images] if isinstance(images, (str, Path)) else list(images)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        files += sorted(q for q in p.rglob("*") if q.is_file() and is_image_file(q)) if p.is_dir() else [p]
    return files


@dataclass
class ImageScore:
    """The score of one image: CAM energy in the mask, the mask's area share, whether the
    CAM's peak lies in the mask."""

    image: str
    mask: str
    energy: float
    area: float
    peak_in_mask: bool
    class_name: str | None = None


@dataclass
class MaskScore:
    """CAM energy in ground-truth masks over a set of images.

    Attributes:
        per_image: one :class:`ImageScore` per scored image.
        skipped: image -> why it was not scored (no mask, unreadable, zero CAM ...).
        method, layer: how the CAMs were computed.
    """

    per_image: list[ImageScore] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    method: str = ""
    layer: str = ""

    @property
    def mean_energy(self) -> float:
        """Mean share of CAM energy inside the masks (NaN when nothing was scored)."""
        return float(np.mean([s.energy for s in self.per_image])) if self.per_image else float("nan")

    @property
    def mean_area(self) -> float:
        """Mean share of pixels inside the masks: the score of a uniform map."""
        return float(np.mean([s.area for s in self.per_image])) if self.per_image else float("nan")

    @property
    def pointing_game(self) -> float:
        """Share of images whose CAM peak lies inside the mask."""
        return float(np.mean([s.peak_in_mask for s in self.per_image])) if self.per_image else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary with the per-image rows."""
        return {
            "cam_energy_in_mask": self.mean_energy,
            "mask_area": self.mean_area,
            "pointing_game": self.pointing_game,
            "images_scored": len(self.per_image),
            "method": self.method,
            "layer": self.layer,
            "per_image": [asdict(s) for s in self.per_image],
            "skipped": dict(self.skipped),
        }


def score_result(result: Any, labels: np.ndarray, rule: ObjectRule | Sequence[int] | None = None) -> tuple[float, float, bool]:
    """``(energy, area, peak in mask)`` of a :class:`~visiontl.explain.cam.CamResult` against a
    stored mask of the original image's size (mapped into the CAM's frame first).

    Args:
        rule: which pixels are the object (:class:`ObjectRule`; a sequence of stored values is
            rule 1; ``None`` the default rule).

    Raises:
        ValueError: the mask has no object pixel in the CAM's frame, or the CAM is zero.
    """
    from PIL import Image

    rule = rule if isinstance(rule, ObjectRule) else ObjectRule(values=None if rule is None else tuple(rule))
    hit = rule.mask(labels, getattr(result, "class_name", None))
    framed: Image.Image = result.prepared.frame(Image.fromarray(hit.astype(np.uint8) * 255), nearest=True)
    inside = np.asarray(framed) > 127
    if not inside.any():
        raise ValueError("the mask has no object pixel in the model's view")
    row, col = result.peak
    return energy_in_mask(result.cam, inside), float(inside.mean()), bool(inside[row, col])


def add_image(score: MaskScore, path: Path, mask_path: Path | None, size: tuple[int, int], result: Any,
              rule: ObjectRule | Sequence[int] | None = None) -> ImageScore | None:
    """Score one explained image against its mask and add it to ``score`` (or record in
    ``score.skipped`` why it cannot be scored).

    Args:
        size: the image's ``(height, width)``; the mask must have it.
        result: the image's :class:`~visiontl.explain.cam.CamResult`.
    """
    if mask_path is None:
        score.skipped[str(path)] = "no mask with this file name"
        return None
    labels = _read_mask(mask_path)
    if labels.shape[:2] != tuple(size):
        score.skipped[str(path)] = f"mask '{mask_path}' is {labels.shape[1]}x{labels.shape[0]}, the image {size[1]}x{size[0]}"
        return None
    try:
        energy, area, peak = score_result(result, labels, rule)
    except ValueError as exc:
        score.skipped[str(path)] = str(exc)
        return None
    row = ImageScore(str(path), str(mask_path), energy, area, peak, result.class_name)
    score.per_image.append(row)
    return row


def cam_energy_in_mask(
    model_or_loaded: str | Path | LoadedModel | Explainer,
    images: str | Path | Sequence[str | Path],
    masks: str | Path | Sequence[str | Path],
    *,
    target_class: str | None = None,
    method: str | None = None,
    layer: str | None = None,
    object_values: Sequence[int] | None = None,
    score_threshold: float | None = None,
    plugins: Plugins | None = None,
) -> MaskScore:
    """The share of CAM energy inside ground-truth masks, image by image and on average.

    Args:
        model_or_loaded: a run directory or checkpoint, a :class:`~visiontl.trained.LoadedModel`,
            or a ready :class:`~visiontl.explain.cam.Explainer`.
        images: image files and/or folders.
        masks: a folder of masks named like the images (any image extension), or one mask
            file per image, in order. Images without a mask are listed in ``skipped``.
        target_class: the class explained (default: the predicted class; segmentation skips
            classes named background; detection: every detection).
        method: CAM method (default: the task's: ``gradcam``, ``eigencam`` for detection).
        layer: group name or module path (default: the last ``stage`` group's output).
        object_values: stored mask values that are the object (default: a segmentation run's
            class map and the explained class; others: every value but 0 and 255).
        score_threshold: detections explained (default: the recipe's eval.score_threshold).

    Returns:
        A :class:`MaskScore`: ``mean_energy`` against ``mean_area`` (chance), the pointing
        game, per-image rows and skipped images with reasons.

    Example:
        >>> s = cam_energy_in_mask("runs/segmentation/pennfudan", "pennfudan/images",
        ...                        "pennfudan/masks", target_class="person")  # doctest: +SKIP
        >>> round(s.mean_energy, 2), round(s.mean_area, 2)  # doctest: +SKIP
        (0.61, 0.21)
    """
    from visiontl.data.images import UnreadableImage, load_rgb
    from visiontl.explain.cam import Explainer
    from visiontl.explain.views import NothingToExplain
    from visiontl.trained import LoadedModel, load_trained

    if isinstance(model_or_loaded, Explainer):
        explainer = model_or_loaded
        rule = ObjectRule.for_model(getattr(explainer, "loaded", None), object_values)
    else:
        loaded = model_or_loaded if isinstance(model_or_loaded, LoadedModel) else load_trained(model_or_loaded, plugins)
        explainer = Explainer.from_loaded(loaded, method=method, layer=layer, score_threshold=score_threshold, plugins=plugins)
        rule = ObjectRule.for_model(loaded, object_values)
    files = expand_images(images)
    score = MaskScore(method=explainer.method, layer=explainer.target.describe())
    for path, mask_path in zip(files, match_masks(files, masks), strict=True):
        if mask_path is None:  # checked first: no CAM is computed for an image without a mask
            score.skipped[str(path)] = "no mask with this file name"
            continue
        try:
            image = load_rgb(path)
            result = explainer.explain(image, target_class)
        except (UnreadableImage, NothingToExplain) as exc:
            score.skipped[str(path)] = str(exc)
            continue
        add_image(score, path, mask_path, (image.height, image.width), result, rule)
    return score
