"""The model names this plugin builds and what each one is made of (plain data, no torch).

A name is an Ultralytics model config stem with its scale letter: ``yolov8n`` is
``yolov8.yaml`` at scale ``n``, ``yolov8s-seg`` is ``yolov8-seg.yaml`` at scale ``s``. Ultralytics
resolves the file and the scale itself from ``<name>.yaml``; this module only says which names
exist, which task each serves and which have published COCO weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from visiontl.errors import ConfigError
from visiontl.ids import ModelId, unknown_model

SCALES = ("n", "s", "m", "l", "x")

#: (config stem, suffix after the scale, task, published weights on Ultralytics' assets).
_FAMILIES: tuple[tuple[str, str, str, bool], ...] = (
    ("yolov8", "", "detection", True),
    ("yolov8", "-seg", "instance_segmentation", True),
    ("yolov8", "-p2", "detection", False),
    ("yolov8", "-p6", "detection", False),
    ("yolov8", "-ghost", "detection", False),
    ("yolov8", "-ghost-p2", "detection", False),
    ("yolov8", "-ghost-p6", "detection", False),
    ("yolov8", "-seg-p6", "instance_segmentation", False),
    ("yolo11", "", "detection", True),
    ("yolo11", "-seg", "instance_segmentation", True),
)

TASKS = ("detection", "instance_segmentation")

#: Where ``pretrained: true`` downloads from (Ultralytics' own asset release).
ASSETS_URL = "https://github.com/ultralytics/assets/releases/download/v8.4.0"


@dataclass(frozen=True)
class ModelSpec:
    """What one model name means.

    Attributes:
        name: the name after ``ultralytics:`` (``yolov8n``).
        config: the Ultralytics model config to build from (``yolov8n.yaml``).
        task: ``detection`` or ``instance_segmentation``.
        segment: whether the head predicts masks (an Ultralytics ``Segment`` head).
        weights_file: the published checkpoint's file name, or ``None`` when none is published.
    """

    name: str
    config: str
    task: str
    segment: bool
    weights_file: str | None

    @property
    def weights_url(self) -> str | None:
        """The download address of the published weights, if any."""
        return f"{ASSETS_URL}/{self.weights_file}" if self.weights_file else None

    @property
    def arch(self) -> str:
        """The architecture family (``yolov8``, ``yolov8-seg``, ``yolo11`` ...)."""
        stem = self.name.split("-", 1)
        base = stem[0].rstrip("".join(SCALES))
        return base + (f"-{stem[1]}" if len(stem) > 1 else "")


def _specs() -> dict[str, ModelSpec]:
    out: dict[str, ModelSpec] = {}
    for stem, suffix, task, published in _FAMILIES:
        for scale in SCALES:
            name = f"{stem}{scale}{suffix}"
            out[name] = ModelSpec(
                name=name,
                config=f"{name}.yaml",
                task=task,
                segment="-seg" in suffix,
                weights_file=f"{name}.pt" if published else None,
            )
    return out


SPECS: dict[str, ModelSpec] = _specs()


def model_names(task: str | None = None) -> list[str]:
    """Every name this plugin builds, for ``task`` (or all tasks)."""
    return [n for n, s in SPECS.items() if task is None or s.task == task]


def resolve(model_id: ModelId, task: str) -> ModelSpec:
    """The spec of ``model_id`` for ``task``.

    Raises:
        UnknownModelError: the name is not one this plugin builds (with did-you-mean).
        ConfigError: the model serves the other task (a ``-seg`` model for ``detection``, or
            the reverse).
    """
    spec = SPECS.get(model_id.name)
    if spec is None:
        raise unknown_model(model_id, SPECS)
    if spec.task != task:
        other = f"{model_id.name}-seg" if task == "instance_segmentation" else model_id.name.replace("-seg", "")
        hint = f" (e.g. 'ultralytics:{other}')" if other in SPECS else ""
        raise ConfigError(
            f"'{model_id}' is a {spec.task.replace('_', ' ')} model, but the recipe's task is '{task}'.",
            fix=f"pick a {task.replace('_', ' ')} model{hint}; list them with: visiontl models --family ultralytics --task {task} --all",
        )
    return spec
