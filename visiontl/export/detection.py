"""Detection graphs: one image in, that image's detections out.

A detector's eval output is a list of per-image dicts whose lengths differ, which no graph
returns for a batch. A family that can trace its whole detector (decoding, NMS and mask
pasting included, as torchvision's detectors can) exports it as a *per-image* graph:

* input ``images``: float32 ``[1, 3, H, W]``, RGB in 0..1, *not* normalised (detectors
  normalise and resize inside, as they do in PyTorch); height and width are dynamic;
* outputs ``boxes`` ``[K, 4]`` xyxy in the input's pixels, ``scores`` ``[K]``, ``labels``
  ``[K]`` (0-based class indices) and, for instance segmentation, ``masks`` ``[K, H, W]``
  in 0..1 at the input's size: the visiontl detection contract for one image.

Its :class:`~visiontl.export.graph.OutputLayout` has ``kind="detections"``; a
:class:`~visiontl.export.runtime.RuntimeModule` with that layout runs the graph once per
image and hands back the contract's list of dicts, so the task's evaluator scores an export
exactly as it scores the PyTorch model. Nothing here knows any family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from visiontl.export.graph import OutputLayout

#: The layout kind of per-image detection graphs.
KIND = "detections"
#: Output names in graph order (``masks`` last, for instance segmentation only).
BOX_OUTPUTS = ("boxes", "scores", "labels")


def detection_layout(masks: bool) -> OutputLayout:
    """The layout of a per-image detection graph (with ``masks`` for instance segmentation)."""
    return OutputLayout(KIND, (*BOX_OUTPUTS, "masks") if masks else BOX_OUTPUTS)


def output_axes(layout: OutputLayout) -> dict[str, dict[int, str]]:
    """ONNX dynamic axes of the outputs: the number of detections, and the mask size."""
    axes: dict[str, dict[int, str]] = {name: {0: "detections"} for name in layout.names}
    if "masks" in layout.names:
        axes["masks"] = {0: "detections", 1: "height", 2: "width"}
    return axes


def single_images(x: Any) -> list[np.ndarray]:
    """A detector's input (a list of ``[3, H, W]`` images or a ``[B, 3, H, W]`` batch) as
    float32 ``[1, 3, H, W]`` arrays, one per image."""
    images = list(x.unbind(0)) if isinstance(x, torch.Tensor) else list(x)
    return [img.detach().to("cpu", torch.float32).contiguous().numpy()[None] for img in images]


def as_prediction(outputs: list[np.ndarray], layout: OutputLayout) -> dict[str, torch.Tensor]:
    """A per-image graph's outputs as the detection contract's dict of torch tensors."""
    named = dict(zip(layout.names, outputs, strict=True))
    out = {
        "boxes": torch.from_numpy(np.ascontiguousarray(named["boxes"], dtype=np.float32)).reshape(-1, 4),
        "scores": torch.from_numpy(np.ascontiguousarray(named["scores"], dtype=np.float32)).reshape(-1),
        "labels": torch.from_numpy(np.ascontiguousarray(named["labels"]).astype(np.int64)).reshape(-1),
    }
    if "masks" in named:
        masks = np.ascontiguousarray(named["masks"], dtype=np.float32)
        out["masks"] = torch.from_numpy(masks[:, 0] if masks.ndim == 4 else masks)
    return out


def run_per_image(run: Callable[[np.ndarray], list[np.ndarray]], x: Any, layout: OutputLayout) -> list[dict[str, torch.Tensor]]:
    """Run a per-image detection graph (``run``: one ``[1, 3, H, W]`` array -> its outputs)
    over every image of ``x``."""
    return [as_prediction(run(image), layout) for image in single_images(x)]
