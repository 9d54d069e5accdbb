"""Predictors: an artefact's engine with its task's pre- and post-processing.

Each predictor reproduces what ``visiontl predict`` does with the trained run (its task's
``predict``), with the settings the export recorded (:class:`~visiontl.deploy.artefact.Artefact`):

* :class:`ClassificationPredictor`: evaluation transform, softmax, top-k;
* :class:`SegmentationPredictor`: resize (stretched or letterboxed) or sliding windows,
  logits back at the image's size, arg-max, class areas;
* :class:`DetectionPredictor`: the image (brought to ``data.image_size`` when the recipe
  says so) through a family's detector (:class:`~visiontl.deploy.detect.GraphDetector`,
  :class:`~visiontl.deploy.yolo.YoloDetector`), back to the image, above the score threshold.

``evaluate`` scores a folder with the task's metric (:mod:`visiontl.deploy.evaluate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from visiontl.deploy import classify, detect, imageops, preprocess, segment
from visiontl.deploy.artefact import Artefact
from visiontl.deploy.backends import Session
from visiontl.deploy.detections import Detections
from visiontl.deploy.errors import DeployError
from visiontl.deploy.prediction import Prediction
from visiontl.deploy.preprocess import Preprocessing

#: An image as ``predict`` takes it: a file, or an already decoded PIL image.
ImageLike = str | Path | Image.Image


def open_image(image: ImageLike) -> tuple[Image.Image, str | None]:
    """``image`` as an RGB PIL image (files read as ``visiontl`` reads them), and its path.

    Raises:
        DeployError: the file cannot be read as an image.
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB"), None
    from visiontl.data.images import UnreadableImage, load_rgb

    try:
        return load_rgb(image), str(image)
    except UnreadableImage as exc:
        raise DeployError(f"Cannot read image '{image}': {exc}.", fix="pass a readable image file (.jpg, .png ...)") from None


class Predictor:
    """An exported model ready to predict (see the module docstring).

    Attributes:
        artefact: what was loaded (manifest facts and recorded settings).
        session: the engine.
        class_names: the classes, in output order.
        preprocessing: the input convention.
    """

    def __init__(self, artefact: Artefact, session: Session) -> None:
        self.artefact = artefact
        self.session = session
        self.class_names = list(artefact.class_names)
        self.preprocessing = Preprocessing.from_manifest(artefact.preprocessing)

    @property
    def task(self) -> str:
        return self.artefact.task

    def predict(self, image: ImageLike, **options: Any) -> Prediction:
        """Predict one image (a file path or a PIL image)."""
        raise NotImplementedError

    def evaluate(self, images: str | Path, labels: str | Path | None = None, masks: str | Path | None = None) -> dict[str, Any]:
        """Score the images of a folder with the task's metric (see :mod:`visiontl.deploy.evaluate`).

        Args:
            images: the images (classification: ``DIR/<class>/<image>`` unless ``labels``).
            labels: classification: a ``path,label`` CSV; detection: a COCO JSON file (default:
                YOLO labels where YOLO keeps them, ``images/`` -> ``labels/``).
            masks: segmentation: the masks folder (matched to images by file stem).
        """
        from visiontl.deploy.evaluate import evaluate

        return evaluate(self, Path(images), Path(labels) if labels else None, Path(masks) if masks else None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.artefact.describe()})"


class ClassificationPredictor(Predictor):
    """Top-k classes of an image."""

    def logits(self, image: Image.Image) -> np.ndarray:
        """The model's ``[C]`` logits for an RGB image."""
        mode = str(self.artefact.data_setting("resize", "auto"))
        x = preprocess.classifier_input(image, self.preprocessing, mode)
        return np.asarray(self.session.run(x)[0], dtype=np.float32).reshape(-1)

    def predict(self, image: ImageLike, topk: int = 5, **options: Any) -> Prediction:
        """Top ``topk`` classes with their softmax probabilities."""
        pil, path = open_image(image)
        probs = classify.softmax(self.logits(pil))
        order, values = classify.top_k(probs, topk)
        return Prediction([self.class_names[i] for i in order], [float(v) for v in values], "probability",
                          size=(pil.height, pil.width), path=path)


class SegmentationPredictor(Predictor):
    """A class per pixel, at the image's own size."""

    @property
    def _settings(self) -> dict[str, Any]:
        return dict(self.artefact.inference.get("segmentation") or {})

    def _forward(self, x: np.ndarray) -> np.ndarray:
        outputs = self.session.run(x)
        names = self.artefact.output_names
        return np.asarray(outputs[names.index("out") if "out" in names else 0], dtype=np.float32)

    def inference_for(self, height: int, width: int, inference: str | None = None) -> str:
        """``resize`` or ``sliding``: as asked, else the recipe's ``eval.inference``, where
        ``auto`` slides windows over images much larger than the input size."""
        inference = inference or str(self.artefact.eval_setting("inference", "auto"))
        if inference == "auto":
            h, w = self.preprocessing.input_size
            ratio = float(self._settings.get("auto_sliding_ratio", 2.0))
            inference = "sliding" if max(height / h, width / w) > ratio else "resize"
        if inference not in ("resize", "sliding"):
            raise DeployError(f"Unknown segmentation inference '{inference}'.", fix="use resize or sliding")
        return inference

    def logits(self, image: Image.Image, inference: str = "resize", overlap: float | None = None) -> np.ndarray:
        """``[C, H, W]`` logits at the image's size by ``resize`` or ``sliding`` inference."""
        multiple = int(self._settings.get("size_multiple", segment.SIZE_MULTIPLE))
        size = (image.height, image.width)
        if inference == "sliding":
            x = preprocess.segmenter_input(image, self.preprocessing, resize=False)
            overlap = float(self.artefact.eval_setting("window_overlap", 0.25)) if overlap is None else overlap
            return segment.sliding_logits(self._forward, x, self.preprocessing.input_size, overlap, multiple)
        mode = str(self.artefact.data_setting("resize", "auto"))
        mode = "stretch" if mode == "auto" else mode
        x = preprocess.segmenter_input(image, self.preprocessing, resize=True, mode=mode)
        return segment.back_to_image(segment.padded_logits(self._forward, x[None], multiple)[0], size, mode)

    def predict(self, image: ImageLike, inference: str | None = None, overlap: float | None = None, **options: Any) -> Prediction:
        """The label map and the share of the image each class covers, largest first."""
        pil, path = open_image(image)
        used = self.inference_for(pil.height, pil.width, inference)
        labels = segment.label_map(self.logits(pil, used, overlap))
        present = segment.class_areas(labels, self.class_names)
        return Prediction([n for n, _ in present], [a for _, a in present], "area", label_map=labels, areas=dict(present),
                          size=(pil.height, pil.width), path=path, extra={"inference": used})


class Detector(Protocol):
    """A family's detector: one ``[3, H, W]`` 0..1 image in, its detections (in its pixels) out."""

    def __call__(self, image: np.ndarray, keep: float | None = None) -> Detections: ...


class DetectionPredictor(Predictor):
    """Objects in an image: boxes, classes, scores (and masks for instance segmentation)."""

    def __init__(self, artefact: Artefact, session: Session, detector: Detector) -> None:
        super().__init__(artefact, session)
        self.detector = detector
        self.masks = artefact.task == "instance_segmentation"

    @property
    def score_threshold(self) -> float:
        """The recipe's ``eval.score_threshold`` (0.5 when not recorded)."""
        return float(self.artefact.eval_setting("score_threshold", 0.5))

    def detect(self, image: Image.Image, keep: float | None = None) -> Detections:
        """Every detection of an RGB image in its pixels, as ``predict`` computes them (the image
        brought to ``data.image_size`` first under ``data.resize: stretch``/``letterbox``)."""
        x = imageops.to_unit(image)
        size = preprocess.size_hw(self.artefact.data_setting("image_size", None))
        mode = str(self.artefact.data_setting("resize", "auto"))
        if size is None or mode not in ("stretch", "letterbox"):
            return self.detector(x, keep)
        resized, content = preprocess.sized_detection_input(x, size, mode)
        return detect.to_image(self.detector(resized, keep), (image.height, image.width), content)

    def predict(self, image: ImageLike, score_threshold: float | None = None, **options: Any) -> Prediction:
        """Objects scoring at least ``score_threshold`` (default: the recipe's), best first."""
        pil, path = open_image(image)
        threshold = self.score_threshold if score_threshold is None else float(score_threshold)
        dets = detect.above(self.detect(pil, keep=threshold), threshold)
        masks = dets.binary_masks() if self.masks else None
        areas = {"pixels": [int(m.sum()) for m in masks]} if masks is not None else {}
        return Prediction([self.class_names[int(c)] for c in dets.labels], [float(s) for s in dets.scores], "score",
                          boxes=dets.boxes, masks=masks, areas=areas, size=(pil.height, pil.width), path=path)
