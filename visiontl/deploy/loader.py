"""``load``: an artefact's manifest -> the predictor of its task and family.

The predictor is chosen from facts the manifest states, not from model names: the task
(classification, segmentation, detection, instance segmentation), and for detectors the form
of the graph's outputs: a per-image detection graph (``layout.kind == "detections"``, boxes
final) or a network whose raw predictions need decoding (``extras.decoder == "yolo"``).
"""

from __future__ import annotations

from pathlib import Path

from visiontl.deploy.artefact import Artefact, find_artefact
from visiontl.deploy.backends import Session, open_session
from visiontl.deploy.errors import DeployError
from visiontl.deploy.predictor import (
    ClassificationPredictor,
    DetectionPredictor,
    Detector,
    Predictor,
    SegmentationPredictor,
)

#: Tasks the runtime predicts for.
TASKS = ("classification", "segmentation", "detection", "instance_segmentation")


def _decoder(artefact: Artefact) -> str:
    """How a detector's outputs become detections: ``graph`` (final) or ``yolo``."""
    if artefact.layout_kind == "detections":
        return "graph"
    # Exports written before the manifest named the decoder: Ultralytics exported them.
    return str(artefact.extras.get("decoder") or ("yolo" if artefact.exporter == "ultralytics" else ""))


def _detector(artefact: Artefact, session: Session) -> Detector:
    from visiontl.deploy.detect import GraphDetector
    from visiontl.deploy.yolo import YoloDetector, YoloSettings

    kind = _decoder(artefact)
    if kind == "graph":
        return GraphDetector(session, artefact.output_names)
    if kind == "yolo":
        imgsz = int(artefact.preprocessing.get("input_size", [640])[0])
        settings = YoloSettings.from_manifest(artefact.extras, imgsz, len(artefact.class_names),
                                              artefact.task == "instance_segmentation")
        return YoloDetector(session, settings)
    raise DeployError(f"'{artefact.manifest_path.name}' holds a detector whose outputs the runtime cannot decode "
                      f"(layout '{artefact.layout_kind}', exporter '{artefact.exporter}').",
                      fix="export it again with this visiontl version: visiontl export RUN --format onnx")


def load(artefact: str | Path, *, format: str | None = None, precision: str | None = None, threads: int | None = None) -> Predictor:
    """Load an exported model for prediction without torch.

    Args:
        artefact: an export's manifest (``*.export.json``), its main file, or the folder
            holding them (with several exports in it, ``format``/``precision`` pick one).
        format: ``onnx`` or ``openvino``.
        precision: ``fp32``, ``bf16`` or ``int8``.
        threads: CPU threads of the engine (``None``: its default).

    Returns:
        A :class:`~visiontl.deploy.predictor.Predictor` for the export's task.

    Raises:
        DeployError: no manifest, several to choose from, a task or format the runtime
            cannot run, an engine that is not installed.

    Example:
        >>> from visiontl import deploy  # doctest: +SKIP
        >>> model = deploy.load("runs/detection/pennfudan/exports")  # doctest: +SKIP
        >>> model.predict("street.jpg").top  # doctest: +SKIP
        [('person', 0.98), ('person', 0.91)]
    """
    found = find_artefact(Path(artefact), format, precision)
    if found.task not in TASKS:
        raise DeployError(f"The runtime predicts for {', '.join(TASKS)}; '{found.manifest_path.name}' is a {found.task} model.",
                          fix="use the run with PyTorch: visiontl predict RUN IMAGES")
    session = open_session(found, threads)
    if found.task == "classification":
        return ClassificationPredictor(found, session)
    if found.task == "segmentation":
        return SegmentationPredictor(found, session)
    return DetectionPredictor(found, session, _detector(found, session))
