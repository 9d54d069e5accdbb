"""Scoring an artefact on a folder, with the task's own metric and visiontl's own readers.

The labels are read by the same torch-free readers the training pipeline uses (ImageFolder
or CSV, masks matched by stem and decoded with the recipe's class settings, COCO JSON or
YOLO labels) and scored by the same numpy metrics (:mod:`visiontl.metrics`), so the figures
compare with ``visiontl eval`` on the run:

* classification: accuracy, top-k accuracy, macro and per-class precision/recall/F1, loss;
* segmentation: mIoU, per-class IoU, Dice, pixel accuracy, loss, over the masks' own pixels,
  with ``resize`` inference unless the recipe's ``eval.inference`` is ``sliding`` (as ``eval``);
* detection / instance segmentation: COCO box (and mask) mAP, mAP50 ... with pycocotools; the
  image goes to the detector as the evaluation transform makes it (``data.image_size`` under
  ``data.resize``) and its detections come back to the image's pixels, where they are scored.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from visiontl.deploy import classify, detect, imageops, segment
from visiontl.deploy.detections import Detections
from visiontl.deploy.errors import DeployError
from visiontl.deploy.predictor import (
    ClassificationPredictor,
    DetectionPredictor,
    Predictor,
    SegmentationPredictor,
)


def evaluate(predictor: Predictor, images: Path, labels: Path | None = None, masks: Path | None = None) -> dict[str, Any]:
    """The task's metrics of ``predictor`` on ``images`` with ``labels``/``masks``.

    Returns:
        The metrics, ``skipped`` (file -> reason) included.

    Raises:
        DeployError: the labels are of the wrong kind for the task, or nothing could be scored.
        DataError: the folders or label files are missing or malformed (visiontl's readers).
    """
    if isinstance(predictor, ClassificationPredictor):
        return evaluate_classification(predictor, images, labels)
    if isinstance(predictor, SegmentationPredictor):
        if masks is None:
            raise DeployError("Scoring a segmentation export needs the masks folder as well as the images.",
                              fix="visiontl eval ARTEFACT --images DIR --masks DIR (masks matched to images by file stem)")
        return evaluate_segmentation(predictor, images, masks)
    if isinstance(predictor, DetectionPredictor):
        return evaluate_detection(predictor, images, labels)
    raise DeployError(f"Task '{predictor.task}' cannot be scored by the runtime.", fix="score the run with: visiontl eval RUN")


def _read(path: Path, skipped: dict[str, str]) -> Image.Image | None:
    from visiontl.data.images import UnreadableImage, load_rgb

    try:
        return load_rgb(path)
    except UnreadableImage as exc:
        skipped[str(path)] = str(exc)
        return None


def evaluate_classification(predictor: ClassificationPredictor, images: Path, labels: Path | None) -> dict[str, Any]:
    """Accuracy and friends on ``images/<class>/<image>``, or on a ``path,label`` CSV whose paths
    are relative to ``images``."""
    from visiontl.data.classification import scan_csv, scan_imagefolder
    from visiontl.metrics.classification import classification_metrics

    names = predictor.class_names
    if labels is not None:
        if labels.suffix.lower() != ".csv":
            raise DeployError(f"--labels '{labels}' is not a CSV file: classification scores a path,label CSV.",
                              fix="visiontl eval ARTEFACT --images DIR --labels labels.csv (or --images DIR/<class>/<image> alone)")
        _, found = scan_csv(labels, images, names)
    else:
        _, found = scan_imagefolder(images, names)
    skipped = dict(found.skipped)
    logits, targets = [], []
    for sample in found.samples:
        image = _read(sample.path, skipped)
        if image is not None:
            logits.append(predictor.logits(image))
            targets.append(sample.label)
    if not logits:
        raise DeployError(f"No readable image of the classes {names} under '{images}'.", fix="pass a folder DIR/<class>/<image> with the model's classes")
    scores, truth = np.stack(logits), np.asarray(targets, dtype=np.int64)
    metrics = classification_metrics(truth, scores, names, int(predictor.artefact.eval_setting("topk", 5)))
    metrics["val_loss"] = classify.cross_entropy(scores, truth)
    metrics["skipped"] = skipped
    return metrics


def evaluate_segmentation(predictor: SegmentationPredictor, images: Path, masks: Path) -> dict[str, Any]:
    """mIoU and friends on images and masks matched by file stem, masks decoded with the
    recipe's ``value_map``/``mask_colors``/``ignore_index``."""
    from visiontl.data.segmentation.masks import MaskDecoder, MaskError
    from visiontl.data.segmentation.scan import pair_folder
    from visiontl.metrics.segmentation import confusion_matrix, segmentation_metrics

    names = predictor.class_names
    art = predictor.artefact
    ignore = int(art.data_setting("ignore_index", 255))
    value_map = art.data_setting("value_map", None)
    colors = art.data_setting("mask_colors", None)
    decoder = MaskDecoder(len(names), ignore, {int(k): int(v) for k, v in value_map.items()} if value_map else None,
                          [tuple(c) for c in colors] if colors else None)
    inference = "sliding" if art.eval_setting("inference", "auto") == "sliding" else "resize"
    pairs, skipped = pair_folder(images, masks)
    cm = np.zeros((len(names), len(names)), dtype=np.int64)
    loss_sum, loss_pixels, scored = 0.0, 0, 0
    for pair in pairs:
        image = _read(pair.image, skipped)
        if image is None:
            continue
        try:
            truth = decoder.decode(pair.mask).labels
        except MaskError as exc:
            skipped[str(pair.mask)] = str(exc)
            continue
        if truth.shape != (image.height, image.width):
            skipped[str(pair.image)] = f"mask {pair.mask.name} is {truth.shape[1]}x{truth.shape[0]}, the image {image.width}x{image.height}"
            continue
        logits = predictor.logits(image, inference)
        cm += confusion_matrix(truth, segment.label_map(logits), len(names), ignore)
        part, count = segment.pixel_cross_entropy(logits, truth, ignore)
        loss_sum, loss_pixels, scored = loss_sum + part, loss_pixels + count, scored + 1
    if not scored:
        raise DeployError(f"No image of '{images}' could be scored against '{masks}'.", fix="pass images and masks with matching file stems")
    metrics = segmentation_metrics(cm, names)
    metrics["val_loss"] = loss_sum / loss_pixels if loss_pixels else math.nan
    metrics["num_images"] = scored
    metrics["skipped"] = skipped
    return metrics


def eval_detection_input(image: Image.Image, size: tuple[int, int] | None, mode: str) -> tuple[Image.Image, tuple[int, int]]:
    """The evaluation transform's resize of a detection image (on 8-bit pixels, as
    ``visiontl.data.detection.transforms.detection_transform(train=False)``): the image the
    detector sees, and where the original lies in it (its top-left (h, w))."""
    from visiontl.data.resize import fit_size

    if size is None:
        return image, (image.height, image.width)
    h, w = image.height, image.width
    mode = "fit" if mode == "auto" else mode
    if mode == "stretch":
        return imageops.pil_resize(image, size), size
    if mode == "fit" and size[0] == size[1]:
        # Resize(size=None, max_size=S): the longer side to S, the other truncated
        short, long = (w, h) if w <= h else (h, w)
        new_short = int(size[0] * short / long)
        target = (size[0], new_short) if w <= h else (new_short, size[0])
        return imageops.pil_resize(image, target), target
    fitted = fit_size(h, w, size)
    resized = imageops.pil_resize(image, fitted)
    if mode == "letterbox" and fitted != tuple(size):
        canvas = Image.new("RGB", (size[1], size[0]), (0, 0, 0))
        canvas.paste(resized, (0, 0))
        resized = canvas
    return resized, fitted


def evaluate_detection(predictor: DetectionPredictor, images: Path, labels: Path | None) -> dict[str, Any]:
    """COCO box (and mask) mAP on ``images`` with a COCO JSON (``file_name`` relative to
    ``images``) or YOLO labels where YOLO keeps them."""
    from visiontl.data.detection.coco import read_coco
    from visiontl.data.detection.masks import record_masks
    from visiontl.data.detection.records import LabelProblems
    from visiontl.data.detection.yolo import read_yolo_folder
    from visiontl.deploy.preprocess import size_hw
    from visiontl.metrics.detection import DetectionEvaluator

    names = predictor.class_names
    if labels is not None:
        if labels.suffix.lower() != ".json":
            raise DeployError(f"--labels '{labels}' is not a COCO JSON file: detection scores a COCO instances file "
                              "(or YOLO labels beside the images, without --labels).",
                              fix="visiontl eval ARTEFACT --images DIR --labels annotations.json")
        data = read_coco(labels, images, names)
        records, problems = data.records, data.problems
    else:
        problems = LabelProblems()
        records = read_yolo_folder(images, names, problems)
    skipped: dict[str, str] = dict(problems.entries)
    size = size_hw(predictor.artefact.data_setting("image_size", None))
    mode = str(predictor.artefact.data_setting("resize", "auto"))
    evaluator = DetectionEvaluator(names, masks=predictor.masks)
    for record in records:
        image = _read(record.path, skipped)
        if image is None:
            continue
        seen, content = eval_detection_input(image, size, mode)
        dets: Detections = predictor.detector(imageops.to_unit(seen))
        if seen.size != image.size or content != (image.height, image.width):
            dets = detect.to_image(dets, (image.height, image.width), content)
        output: dict[str, Any] = {"boxes": dets.boxes, "scores": dets.scores, "labels": dets.labels}
        target: dict[str, Any] = {"boxes": record.boxes, "labels": record.labels, "iscrowd": record.iscrowd}
        if predictor.masks:
            output["masks"] = dets.binary_masks() if dets.masks is not None else np.zeros((0, image.height, image.width), bool)
            target["masks"] = record_masks(record)
        evaluator.update([output], [target])
    metrics = evaluator.compute()
    metrics["skipped"] = skipped
    return metrics
