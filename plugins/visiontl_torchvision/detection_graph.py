"""torchvision detectors seen as per-image graphs (what :mod:`detection_export` traces).

* :class:`DetectorGraph`: a :class:`~visiontl_torchvision.detection_wrapper.TorchvisionDetector`
  as ``[1, 3, H, W]`` (RGB 0..1) -> ``boxes, scores, labels(, masks)`` in the visiontl
  detection contract. Everything runs inside: normalise and resize, backbone, RPN or dense
  head, box decoding, score filter, NMS, mask pasting, 0-based labels.
* :class:`GraphTransform`: torchvision's ``GeneralizedRCNNTransform`` with an eval resize whose
  output size is computed in integers. torchvision's traced resize computes it in float32,
  which rounds some sizes down by a pixel (a 525x682 image becomes 319x415 in the graph and
  320x415 in PyTorch), and a one-pixel resize changes every detection of the image.
* :class:`SSDDetections`: SSD's eval forward with its default boxes computed once (SSD
  resizes every image to a fixed size, so they are constants) and the boxes scaled back to
  the input's size read from the graph: torchvision's default-box generator does not trace
  (``arange(n) + 0.5`` becomes integer arithmetic in the graph and every box lands in the
  corner), and its SSD scales boxes back by the size of the traced example, frozen.

Each view computes in eager PyTorch exactly what the wrapped model computes (the tests check
it), so tracing it changes nothing but where it runs.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform

if TYPE_CHECKING:  # pragma: no cover
    from visiontl_torchvision.detection_wrapper import TorchvisionDetector

#: Image sides up to which the resize reproduces PyTorch's double-precision rounding exactly.
MAX_SIDE = 16384


def _rounds_down(target: int) -> torch.Tensor:
    """``[MAX_SIDE + 1]`` int64: 1 where eager torchvision resizes a side of that length,
    when it is the side that sets the scale, to ``target - 1`` instead of ``target``.

    Eager torchvision computes ``int(side * (target / side))`` in doubles, which is
    ``target - 1`` for some sides (``303 * (320 / 303) = 319.99999999999994``); integer
    arithmetic in the graph gives ``target``, so the graph looks the correction up here.
    """
    flags = [0] + [int(int(side * (target / side)) == target - 1) for side in range(1, MAX_SIDE + 1)]
    return torch.tensor(flags, dtype=torch.int64)


class GraphTransform(GeneralizedRCNNTransform):
    """``transform`` (a ``GeneralizedRCNNTransform``) with a traceable, exact eval resize.

    Training, fixed-size resizing (SSD) and resizing with targets are torchvision's own.
    """

    def __init__(self, transform: GeneralizedRCNNTransform) -> None:
        super().__init__(transform.min_size, transform.max_size, transform.image_mean, transform.image_std,
                         transform.size_divisible, transform.fixed_size, _skip_resize=transform._skip_resize)
        self.short_side = int(transform.min_size[-1])
        self.long_side = int(transform.max_size)
        self.register_buffer("short_rounds_down", _rounds_down(self.short_side), persistent=False)
        self.register_buffer("long_rounds_down", _rounds_down(self.long_side), persistent=False)

    def resize(self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, Any]:
        if self.training or self.fixed_size is not None or target is not None:
            return super().resize(image, target)
        size = torch._shape_as_tensor(image)[-2:]
        h, w = size[0], size[1]
        shortest, longest = torch.minimum(h, w), torch.maximum(h, w)
        # torchvision's scale is min(short / shortest, long / longest): compare without dividing
        by_short = self.short_side * longest <= self.long_side * shortest
        num = torch.where(by_short, torch.tensor(self.short_side), torch.tensor(self.long_side))
        den = torch.where(by_short, shortest, longest)
        table = torch.where(by_short, self.short_rounds_down, self.long_rounds_down)
        down = table[torch.clamp(den, max=MAX_SIDE)]
        new_h = (h * num) // den - down * (h == den).long()
        new_w = (w * num) // den - down * (w == den).long()
        # sizes as 0-d tensors, so that the graph computes them (ints would be frozen)
        size_hw: Any = [new_h, new_w]
        image = F.interpolate(image[None], size=size_hw, mode="bilinear", align_corners=False)[0]
        return image, target


class SSDDetections(nn.Module):
    """SSD's eval forward (``ssd``: torchvision's ``SSD``) with constant default boxes."""

    def __init__(self, ssd: Any) -> None:
        super().__init__()
        self.ssd: Any = ssd
        h, w = ssd.transform.fixed_size
        with torch.no_grad():
            images, _ = ssd.transform([torch.zeros(3, h, w)])
            features = list(ssd.backbone(images.tensors).values())
            anchors = ssd.anchor_generator(images, features)[0]
        self.register_buffer("anchors", anchors, persistent=False)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        images, _ = self.ssd.transform([image])
        features = list(self.ssd.backbone(images.tensors).values())
        head_outputs = self.ssd.head(features)
        detections = self.ssd.postprocess_detections(head_outputs, [self.anchors], images.image_sizes)[0]
        # Back to the input's pixels as torchvision's transform.postprocess does, with the
        # input's size read from the graph (a Python int would be frozen at the traced size).
        original = torch._shape_as_tensor(image)[-2:].to(torch.float32)
        resized = torch.tensor(images.image_sizes[0], dtype=torch.float32)
        ratio_h, ratio_w = (original / resized).unbind(0)
        x1, y1, x2, y2 = detections["boxes"].unbind(1)
        boxes = torch.stack((x1 * ratio_w, y1 * ratio_h, x2 * ratio_w, y2 * ratio_h), dim=1)
        return {**detections, "boxes": boxes}


def _float_cell_anchors(detector: nn.Module) -> None:
    """Rebuild torchvision's cell anchors in float32: an autocast forward of the model (a bf16
    benchmark, say) leaves them cast to bf16, which would round the graph's anchors and make
    the trace differ between its sanity-check runs."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    for module in detector.modules():
        if isinstance(module, AnchorGenerator):
            module.cell_anchors = [module.generate_anchors(size, ratio) for size, ratio in zip(module.sizes, module.aspect_ratios, strict=True)]


class DetectorGraph(nn.Module):
    """``model`` as a per-image graph (a copy: the trained model is left as it is).

    Args:
        model: the wrapped torchvision detector.
    """

    def __init__(self, model: TorchvisionDetector) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        detector = self.model.detector
        _float_cell_anchors(detector)
        self.names = ("boxes", "scores", "labels", "masks") if model.masks else ("boxes", "scores", "labels")
        if type(detector).__name__ == "SSD":
            self.ssd: SSDDetections | None = SSDDetections(detector)
        else:
            self.ssd = None
            detector.transform = GraphTransform(detector.transform)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.ssd is not None:
            out = self.model._shift_out(self.ssd(images[0]))
        else:
            out = self.model([images[0]])[0]
        return tuple(out[name] for name in self.names)
