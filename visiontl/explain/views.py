"""What a CAM needs from each task: the model input, the picture the model saw, and targets.

A *view* prepares one RGB image the way the task's inference does (classification: resize,
centre-crop, normalise; segmentation: resize to the input size, normalise; detection: the image
at its own size in 0..1, since detectors scale inside), gives the module the CAM runs (for
segmentation, a wrapper returning logits at the input's size), and turns a first forward pass
into the CAM's targets:

* classification: the chosen class's logit (``ClassifierOutputTarget``);
* segmentation: the chosen class's logits summed over the pixels predicted as that class
  (``SemanticSegmentationTarget``; the whole image when none is);
* detection and instance segmentation: gradient methods score how well the detections above
  the score threshold are kept (``FasterRCNNBoxScoreTarget``: box IoU plus score, through the
  visiontl detection contract, so every family works); EigenCAM needs no target.

Every view maps pictures in the original image's frame (a ground-truth mask) into the frame
the CAM is computed in, so scores compare like with like.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from visiontl.errors import ConfigError
from visiontl.ids import suggest

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image
    from torch import nn

    from visiontl.contracts import Preprocessing

#: Class names taken for "background" when a segmentation target class is picked by default.
BACKGROUND_NAMES = frozenset({"background", "bg", "_background_", "__background__", "void"})


class NothingToExplain(ConfigError):
    """This image has nothing the chosen method can explain (no detection above the threshold)."""


@dataclass
class Prepared:
    """One image made ready for a CAM.

    Attributes:
        input: the model input ``[1, 3, h, w]``.
        display: the picture the model saw, float ``[h, w, 3]`` in 0..1 (same frame as the CAM).
        frame: maps a PIL picture of the original image's size (e.g. a mask) into that frame;
            ``frame(picture, nearest=True)`` for label maps.
    """

    input: torch.Tensor
    display: np.ndarray
    frame: Callable[..., Image.Image]


@dataclass
class Choice:
    """What a first forward pass chose to explain.

    Attributes:
        targets: the grad-cam targets (one per image of the batch of one).
        class_name: the explained class (``None`` for class-agnostic detection maps).
        score: its probability (classification), predicted area fraction (segmentation) or
            best detection score (detection).
        boxes: detections drawn on the overlay: ``(x1, y1, x2, y2, class name, score)``.
    """

    targets: list[Any]
    class_name: str | None
    score: float | None
    boxes: list[tuple[float, float, float, float, str, float]] = field(default_factory=list)


def class_index(name: str, class_names: Sequence[str]) -> int:
    """The index of ``name`` among ``class_names``, or a :class:`ConfigError` with did-you-mean."""
    if name in class_names:
        return list(class_names).index(name)
    close = suggest(name, class_names, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(
        f"--target-class '{name}' is not one of the model's classes.{hint} Classes: {', '.join(class_names)}.",
        fix="name one of the model's classes, or leave --target-class out to explain the predicted class",
    )


class View(ABC):
    """The task-specific half of explaining one image."""

    #: the method used when none is asked for.
    default_method: str = "gradcam"
    #: the methods this task supports.
    methods: tuple[str, ...] = ()

    def __init__(self, preprocessing: Preprocessing, class_names: Sequence[str], score_threshold: float = 0.5) -> None:
        self.preprocessing = preprocessing
        self.class_names = list(class_names)
        self.score_threshold = score_threshold

    @abstractmethod
    def prepare(self, image: Image.Image) -> Prepared:
        """The model input, the displayed picture and the frame mapping for ``image``."""

    def cam_model(self, model: nn.Module) -> nn.Module:
        """The module the CAM runs (default: the model itself)."""
        return model

    @abstractmethod
    def choose(self, outputs: Any, target_class: str | None, uses_gradients: bool) -> Choice:
        """Targets and the explained class from the first forward's ``outputs``."""

    def alternative(self) -> bool:
        """Switch to another framing of the image when the target layer's grid does not match
        this one; ``False`` when there is none (the default)."""
        return False


def _denormalise(x: torch.Tensor, pre: Preprocessing) -> np.ndarray:
    mean = np.asarray(pre.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(pre.std, dtype=np.float32)[:, None, None]
    picture = x[0].detach().cpu().numpy() * std + mean
    return np.clip(picture, 0.0, 1.0).transpose(1, 2, 0).astype(np.float32)


def _interp(nearest: bool, name: str) -> Any:
    from torchvision.transforms import InterpolationMode

    if nearest:
        return InterpolationMode.NEAREST
    return InterpolationMode.BICUBIC if name == "bicubic" else InterpolationMode.BILINEAR


class ClassificationView(View):
    """Classifiers: the eval transform's resize and centre crop, the class's logit as target."""

    default_method = "gradcam"
    methods = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam", "eigengradcam")

    def _frame(self, picture: Image.Image, nearest: bool = False) -> Image.Image:
        from torchvision.transforms.v2 import functional as F

        pre = self.preprocessing
        h, w = pre.input_size
        scale = 1.0 / pre.crop_pct if pre.crop_pct > 0 else 1.0
        # Exactly the resize of visiontl.data.transforms.eval_transform.
        size = [math.floor(h * scale), math.floor(w * scale)] if h != w else [math.floor(h * scale)]
        resized = F.resize(picture, size, interpolation=_interp(nearest, pre.interpolation))
        return F.center_crop(resized, [h, w])

    def prepare(self, image: Image.Image) -> Prepared:
        from visiontl.data.transforms import eval_transform

        x = eval_transform(self.preprocessing)(image).unsqueeze(0)
        return Prepared(x, _denormalise(x, self.preprocessing), self._frame)

    def choose(self, outputs: Any, target_class: str | None, uses_gradients: bool) -> Choice:
        import torch
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        probs = torch.softmax(outputs.detach().float(), dim=1)[0]
        index = class_index(target_class, self.class_names) if target_class else int(probs.argmax())
        return Choice([ClassifierOutputTarget(index)], self.class_names[index], float(probs[index]))


class SegmentationLogits:
    """Builds the module that returns a segmenter's logits ``[B, C, H, W]`` at the input size."""

    @staticmethod
    def wrap(model: nn.Module) -> nn.Module:
        from torch import nn

        from visiontl.data.segmentation.inference import logits

        class _Logits(nn.Module):
            def __init__(self, inner: nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return logits(self.inner, x)

        return _Logits(model)


class SegmentationView(View):
    """Semantic segmenters: resize to the input size, the class's pixels as target."""

    default_method = "gradcam"
    methods = ClassificationView.methods

    def _frame(self, picture: Image.Image, nearest: bool = False) -> Image.Image:
        from torchvision.transforms.v2 import functional as F

        pre = self.preprocessing
        return F.resize(picture, list(pre.input_size), interpolation=_interp(nearest, pre.interpolation))

    def prepare(self, image: Image.Image) -> Prepared:
        from visiontl.data.segmentation.transforms import image_transform

        x = image_transform(self.preprocessing, resize=True)(image).unsqueeze(0)
        return Prepared(x, _denormalise(x, self.preprocessing), self._frame)

    def cam_model(self, model: nn.Module) -> nn.Module:
        return SegmentationLogits.wrap(model)

    def _default_class(self, probs: np.ndarray, predicted: np.ndarray) -> int:
        """The foreground class with the largest predicted area; when no foreground pixel is
        predicted, the foreground class with the most probability mass (objects are what
        people ask about); background only when it is the only class."""
        foreground = [i for i, n in enumerate(self.class_names) if n.lower() not in BACKGROUND_NAMES]
        if not foreground:
            foreground = list(range(len(self.class_names)))
        areas = np.bincount(predicted.reshape(-1), minlength=len(self.class_names))
        if areas[foreground].max() > 0:
            return foreground[int(np.argmax(areas[foreground]))]
        mass = probs.reshape(probs.shape[0], -1).sum(1)
        return foreground[int(np.argmax(mass[foreground]))]

    def choose(self, outputs: Any, target_class: str | None, uses_gradients: bool) -> Choice:
        import torch
        from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

        probs = torch.softmax(outputs.detach()[0].float(), dim=0).cpu().numpy()
        predicted = probs.argmax(0)
        index = class_index(target_class, self.class_names) if target_class else self._default_class(probs, predicted)
        mask = (predicted == index).astype(np.float32)
        area = float(mask.mean())
        if area == 0.0:
            # No pixel is predicted as the class: explain its score over the whole image.
            mask = np.ones_like(mask)
        return Choice([SemanticSegmentationTarget(index, mask)], self.class_names[index], area)


class DetectionView(View):
    """Detectors (visiontl detection contract): the image at its own size, boxes as targets.

    Detectors resize inside, so the CAM's grid covers the image as the detector framed it.
    Detectors that keep the aspect ratio (torchvision's) need nothing more; one that
    letterboxes onto a square canvas (Ultralytics) gives a square grid for a non-square image:
    the view then puts the image on a centred square itself (:meth:`alternative`), which such
    a detector merely rescales, so grid and picture coincide.
    """

    default_method = "eigencam"
    methods = ("eigencam", "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigengradcam")
    #: grey of the square's padding (Ultralytics' letterbox grey).
    PAD = 114

    def __init__(self, preprocessing: Preprocessing, class_names: Sequence[str], score_threshold: float = 0.5) -> None:
        super().__init__(preprocessing, class_names, score_threshold)
        self.square = False

    def alternative(self) -> bool:
        if self.square:
            return False
        self.square = True
        return True

    def _frame(self, picture: Image.Image, nearest: bool = False) -> Image.Image:
        if not self.square or picture.width == picture.height:
            return picture
        from PIL import Image

        side = max(picture.size)
        bands = len(picture.getbands())
        value = 0 if nearest else self.PAD  # label maps pad with background
        canvas = Image.new(picture.mode, (side, side), value if bands == 1 else (value,) * bands)
        canvas.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
        return canvas

    def prepare(self, image: Image.Image) -> Prepared:
        import torch
        from torchvision.transforms.v2 import functional as F

        x = F.to_dtype(F.pil_to_tensor(self._frame(image.convert("RGB"))), torch.float32, scale=True).unsqueeze(0)
        return Prepared(x, x[0].numpy().transpose(1, 2, 0).astype(np.float32), self._frame)

    def choose(self, outputs: Any, target_class: str | None, uses_gradients: bool) -> Choice:
        from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

        out = outputs[0]
        scores = out["scores"].detach().float().cpu()
        labels = out["labels"].detach().cpu()
        boxes = out["boxes"].detach().float().cpu()
        wanted = class_index(target_class, self.class_names) if target_class else None
        keep = [i for i in range(len(scores)) if float(scores[i]) >= self.score_threshold and (wanted is None or int(labels[i]) == wanted)]
        keep.sort(key=lambda i: -float(scores[i]))
        drawn = [(*[float(v) for v in boxes[i]], self.class_names[int(labels[i])], float(scores[i])) for i in keep]
        best = float(scores[keep[0]]) if keep else None
        name = target_class
        if not uses_gradients:
            # EigenCAM is class-agnostic: the map is the activations' first principal component.
            return Choice([], name, best, drawn)  # type: ignore[arg-type]
        if not keep:
            which = f" of class '{target_class}'" if target_class else ""
            raise NothingToExplain(
                f"No detection{which} scores at least {self.score_threshold:g}, so a box-targeted CAM has nothing to explain.",
                fix="lower --score-threshold, or use --method eigencam (needs no detections)",
            )
        target = FasterRCNNBoxScoreTarget(labels[keep], boxes[keep].numpy())
        return Choice([target], name, best, drawn)  # type: ignore[arg-type]


#: The view of each task (third-party tasks are not explained yet).
VIEWS: dict[str, type[View]] = {
    "classification": ClassificationView,
    "segmentation": SegmentationView,
    "detection": DetectionView,
    "instance_segmentation": DetectionView,
}


def view_for(task: str, preprocessing: Preprocessing, class_names: Sequence[str], score_threshold: float = 0.5) -> View:
    """The view of ``task``, or a :class:`ConfigError` naming the tasks that can be explained."""
    if task not in VIEWS:
        raise ConfigError(
            f"visiontl explain does not know how to explain task '{task}'.",
            fix=f"explain a model of one of these tasks: {', '.join(VIEWS)}",
        )
    return VIEWS[task](preprocessing, class_names, score_threshold)
