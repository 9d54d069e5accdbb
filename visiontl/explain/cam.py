"""Class activation maps for one trained model, image by image (the grad-cam package).

:class:`Explainer` ties together the model, its task's view (:mod:`visiontl.explain.views`),
the target layer chosen from its layer groups (:mod:`visiontl.explain.layers`) and a CAM
method. Each image costs two forward passes (the first picks the targets and reads the
layer's layout) and, for gradient methods, one backward pass.

The map returned is grad-cam's: ReLU of the weighted activations, resized to the input
frame, scaled to 0..1 per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visiontl.errors import ConfigError, PluginError
from visiontl.explain.methods import GRADIENT_FREE, METHODS

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image
    from torch import nn

    from visiontl.contracts import BuiltModel, Preprocessing
    from visiontl.explain.layers import TargetLayer
    from visiontl.explain.reshape import Layout
    from visiontl.explain.views import Prepared, View
    from visiontl.plugin_manager import Plugins
    from visiontl.trained import LoadedModel


@dataclass
class CamResult:
    """The CAM of one image.

    Attributes:
        cam: float ``[h, w]`` in 0..1, in the frame of ``display``.
        display: the picture the model saw, float ``[h, w, 3]`` in 0..1.
        class_name: the explained class (``None`` for class-agnostic maps).
        score: the class's probability, predicted area or best detection score.
        method: the CAM method.
        layer: the target layer, described (``stage4 (layer4)``).
        boxes: detections drawn on the overlay ``(x1, y1, x2, y2, class, score)``.
        prepared: the prepared input (its ``frame`` maps masks into the CAM's frame).
    """

    cam: np.ndarray
    display: np.ndarray
    class_name: str | None
    score: float | None
    method: str
    layer: str
    boxes: list[tuple[float, float, float, float, str, float]] = field(default_factory=list)
    prepared: Prepared | None = field(default=None, repr=False)

    @property
    def peak(self) -> tuple[int, int]:
        """``(row, column)`` of the CAM's maximum."""
        row, col = np.unravel_index(int(np.argmax(self.cam)), self.cam.shape)
        return int(row), int(col)


def _grad_cam_module() -> Any:
    try:
        import pytorch_grad_cam
    except ImportError as exc:
        raise PluginError(
            f"visiontl explain needs the grad-cam package ({exc}).",
            fix="pip install 'grad-cam>=1.5'",
        ) from None
    return pytorch_grad_cam


def _cam_class(method: str) -> Any:
    lib = _grad_cam_module()
    if method == "eigencam":
        return _signed_eigencam(lib.EigenCAM)
    return getattr(lib, METHODS[method])


def principal_component_maps(activations: np.ndarray) -> np.ndarray:
    """EigenCAM's maps: each image's activations ``[C, h, w]`` projected on their first
    principal component (centred, as grad-cam does), with the sign fixed.

    An SVD component is defined up to its sign, so plain EigenCAM sometimes returns the negated
    map (background hot, objects cold). Following Seg-Eigen-CAM (Chung and Ying, 2025, eq. 13)
    the map is flipped when its most negative value outweighs its most positive. The SVD is
    torch's thin one, which keeps to torch's thread count (numpy's full SVD ran 13x slower
    here with two BLAS threads on a busy two-core machine).
    """
    import torch

    maps = []
    for act in activations:
        x = torch.from_numpy(np.nan_to_num(np.asarray(act, dtype=np.float32))).reshape(act.shape[0], -1).T
        x = x - x.mean(dim=0)
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        projection = (x @ vh[0]).reshape(act.shape[1:])
        if abs(float(projection.min())) > abs(float(projection.max())):
            projection = -projection
        maps.append(projection.numpy())
    return np.asarray(maps, dtype=np.float32)


def _signed_eigencam(base: Any) -> Any:
    """grad-cam's EigenCAM with :func:`principal_component_maps` (sign fixed, torch SVD)."""

    class SignedEigenCAM(base):  # type: ignore[misc, valid-type]
        def get_cam_image(self, input_tensor: Any, target_layer: Any, targets: Any, activations: Any, grads: Any, eigen_smooth: bool) -> np.ndarray:
            return principal_component_maps(activations)

    return SignedEigenCAM


class Explainer:
    """Computes CAMs for one model, one image at a time.

    Args:
        model: the eval-mode model.
        task: its task name (``classification``, ``segmentation``, ``detection``,
            ``instance_segmentation``).
        class_names: its classes in label order.
        preprocessing: its input convention.
        target: the layer to look at (:func:`visiontl.explain.layers.resolve_target_layer`).
        method: a key of :data:`visiontl.explain.methods.METHODS`; default: the task's (``gradcam``, or ``eigencam``
            for detection).
        score_threshold: lowest score of the detections explained and drawn (detection).
        fallbacks: earlier target layers, nearest first, tried in turn when no gradient
            reaches ``target``'s positions on the first image.

    Example:
        >>> explainer = Explainer.from_loaded(api.load_trained("runs/classification/x"))  # doctest: +SKIP
        >>> result = explainer.explain(load_rgb("bee.jpg"), target_class="bees")  # doctest: +SKIP
        >>> result.cam.shape, result.class_name  # doctest: +SKIP
        ((224, 224), 'bees')
    """

    def __init__(
        self,
        model: nn.Module,
        task: str,
        class_names: list[str],
        preprocessing: Preprocessing,
        target: TargetLayer,
        method: str | None = None,
        score_threshold: float = 0.5,
        fallbacks: list[TargetLayer] | None = None,
    ) -> None:
        from visiontl.explain.views import view_for

        self.model = model.eval()
        self.task = task
        self.class_names = list(class_names)
        self.view: View = view_for(task, preprocessing, class_names, score_threshold)
        self.target = target
        self.method = method or self.view.default_method
        if self.method not in METHODS:
            raise ConfigError(f"Unknown CAM method '{self.method}'.", fix=f"use one of: {', '.join(METHODS)}")
        if self.method not in self.view.methods:
            raise ConfigError(
                f"CAM method '{self.method}' does not work for task '{task}'.",
                fix=f"use one of: {', '.join(self.view.methods)}",
            )
        self._layout: Layout | None = None
        #: earlier layers to try when no gradient reaches the default one (see explain()).
        self._fallbacks: list[TargetLayer] = list(fallbacks or [])
        self._checked = False

    @classmethod
    def from_loaded(
        cls,
        loaded: LoadedModel,
        *,
        method: str | None = None,
        layer: str | None = None,
        score_threshold: float | None = None,
        plugins: Plugins | None = None,
    ) -> Explainer:
        """An explainer for a model from :func:`visiontl.trained.load_trained`, its target layer
        chosen from the layer groups its plugin describes.

        Args:
            layer: a group name or module path (default: the last ``stage`` group's output).
            score_threshold: default: the trained recipe's ``eval.score_threshold``.

        Raises:
            ConfigError: the model is an ensemble (no layer groups), or ``layer`` is unknown.
        """
        if loaded.built is None:
            raise ConfigError(
                f"'{loaded.checkpoint}' is an ensemble: it has no layer groups of its own to explain.",
                fix="explain each member run on its own: visiontl explain MEMBER_RUN IMAGES...",
            )
        threshold = loaded.recipe.eval.score_threshold if score_threshold is None else score_threshold
        return cls.from_built(
            loaded.built, loaded.class_names, preprocessing=loaded.preprocessing, method=method, layer=layer, score_threshold=threshold, plugins=plugins
        )

    @classmethod
    def from_built(
        cls,
        built: BuiltModel,
        class_names: list[str],
        *,
        preprocessing: Preprocessing | None = None,
        method: str | None = None,
        layer: str | None = None,
        score_threshold: float = 0.5,
        plugins: Plugins | None = None,
    ) -> Explainer:
        """An explainer for a plugin-built model (``visiontl_build``'s answer, e.g. a model id
        built for a benchmark), its target layer chosen from its layer groups.

        Args:
            class_names: its classes in label order (one per output of its head).
            preprocessing: its input convention (default: ``built.preprocessing``).
            layer: a group name or module path (default: the last ``stage`` group's output).
        """
        from visiontl.explain.layers import fallback_layers, resolve_target_layer
        from visiontl.plugin_manager import get_plugins
        from visiontl.trained import layer_groups

        groups = layer_groups(plugins or get_plugins(), built)
        target = resolve_target_layer(built.model, groups, layer)
        fallbacks = fallback_layers(built.model, groups) if layer is None else []
        pre = built.preprocessing if preprocessing is None else preprocessing
        return cls(built.model, built.task, class_names, pre, target, method, score_threshold, fallbacks)

    @property
    def uses_gradients(self) -> bool:
        return self.method not in GRADIENT_FREE

    def _first_pass(self, cam_model: nn.Module, prepared: Prepared) -> tuple[Any, Any]:
        """Model outputs and the target layer's output, without gradients."""
        import torch

        seen: dict[str, Any] = {}
        handle = self.target.module.register_forward_hook(lambda _m, _i, out: seen.setdefault("out", out))
        try:
            with torch.no_grad():
                outputs = cam_model(prepared.input.to(self._device()))
        finally:
            handle.remove()
        if "out" not in seen:
            raise ConfigError(
                f"The target layer {self.target.describe()} is not used by the model's forward pass.",
                fix="pass --layer with a group or module the forward pass goes through",
            )
        return outputs, seen["out"]

    def _device(self) -> Any:
        import torch

        return next((p.device for p in self.model.parameters()), torch.device("cpu"))

    def explain(self, image: Image.Image, target_class: str | None = None) -> CamResult:
        """The CAM of one RGB PIL image.

        Two decisions are taken on the first image and kept: when the target layer's grid
        does not have the image's aspect ratio (a detector that letterboxes its input to a
        square), the view frames the image as a centred square (:meth:`View.alternative`);
        when no gradient reaches the default target layer's positions (a transformer that
        classifies from its class token only), the previous stage group is used instead.

        Args:
            target_class: the class to explain (default: the predicted class; for detection,
                the detections of every class above the score threshold).

        Raises:
            ConfigError: unknown class, unusable target layer, or (box-targeted detection
                methods) no detection above the score threshold.
        """
        while True:
            result, reached = self._explain_once(image, target_class)
            first = not self._checked
            self._checked = True
            if reached or not first or not self._fallbacks:
                return result
            from visiontl import log

            previous = self.target
            self.target, self._layout, self._checked = self._fallbacks.pop(0), None, False
            log.info(f"explain: no gradient reaches the positions of {previous.describe()}; using {self.target.describe()}")

    def _explain_once(self, image: Image.Image, target_class: str | None) -> tuple[CamResult, bool]:
        """The CAM, and whether any gradient reached the target layer (always true for
        gradient-free methods)."""
        from visiontl.explain.reshape import detect_layout, reshape_transform

        prepared = self.view.prepare(image)
        cam_model = self.view.cam_model(self.model)
        outputs, feature = self._first_pass(cam_model, prepared)
        if self._layout is None:
            try:
                self._layout = detect_layout(feature, tuple(prepared.input.shape[-2:]))  # type: ignore[arg-type]
            except ConfigError:
                if not self.view.alternative():
                    raise
                return self._explain_once(image, target_class)
        choice = self.view.choose(outputs, target_class, self.uses_gradients)
        cam_cls = _cam_class(self.method)
        cam = cam_cls(model=cam_model, target_layers=[self.target.module], reshape_transform=reshape_transform(self._layout))
        if self.uses_gradients:
            # Gradients must reach the target layer even when every weight before it is frozen.
            cam.compute_input_gradient = True
        try:
            maps = cam(input_tensor=prepared.input.to(self._device()), targets=choice.targets)
            grads = cam.activations_and_grads.gradients
            reached = not self.uses_gradients or any(bool(g.abs().sum() > 0) for g in grads)
        except RuntimeError as exc:
            raise PluginError(
                f"{self.method} failed on {self.target.describe()}: {str(exc).splitlines()[0]}",
                fix="try --method eigencam (needs no gradients) or another --layer",
            ) from None
        finally:
            cam.activations_and_grads.release()
            self.model.zero_grad(set_to_none=True)
        result = CamResult(
            cam=np.asarray(maps[0], dtype=np.float32),
            display=prepared.display,
            class_name=choice.class_name,
            score=choice.score,
            method=self.method,
            layer=self.target.describe(),
            boxes=choice.boxes,
            prepared=prepared,
        )
        return result, reached


def unique_path(folder: Path, stem: str, used: set[str]) -> Path:
    """``folder/stem.png``, with ``-2``, ``-3`` ... when two images share a stem."""
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return folder / f"{name}.png"
