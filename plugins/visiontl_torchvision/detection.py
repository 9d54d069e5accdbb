"""torchvision detectors for ``detection`` and ``instance_segmentation``.

Model ids:

* ``torchvision:<builder>``: ``fasterrcnn_resnet50_fpn``, ``fasterrcnn_resnet50_fpn_v2``,
  ``fasterrcnn_mobilenet_v3_large_fpn``, ``fasterrcnn_mobilenet_v3_large_320_fpn``,
  ``retinanet_resnet50_fpn``, ``retinanet_resnet50_fpn_v2``, ``fcos_resnet50_fpn``,
  ``ssdlite320_mobilenet_v3_large`` (detection); ``maskrcnn_resnet50_fpn``,
  ``maskrcnn_resnet50_fpn_v2`` (instance segmentation). ``pretrained: true`` loads the COCO
  weights (``model.options.weights`` picks the enum value) from the torch hub cache, or
  downloads them; offline and not cached, it fails within seconds. The COCO heads are
  replaced by new ones for the user's classes; backbone, neck and RPN keep their weights.
* ``torchvision:fasterrcnn`` (detection) and ``torchvision:maskrcnn`` (instance
  segmentation) with ``model.options.backbone: <classification model id>``: torchvision's
  "different backbone" path, e.g. ``backbone: torchvision:squeezenet1_1``. Their weights:
  ``model.weights`` names the *backbone classifier's* file (e.g.
  ``weights/squeezenet1_1_imagenet_features.pth``, loaded by the classifier's own plugin) or
  a whole-detector file (a visiontl checkpoint); ``pretrained: true`` loads the backbone
  family's published weights. Both go through the core's ``model.weights``/``pretrained``, so
  ``predict`` and ``eval``, which rebuild the model without weights before loading the
  checkpoint, never need the backbone file or the network.

Options (``model.options``), all optional:

* sizes that make CPU training practical: ``min_size``, ``max_size`` (input scaling inside
  the model), ``rpn_pre_nms_top_n_train/test``, ``rpn_post_nms_top_n_train/test``,
  ``box_batch_size_per_image``, ``box_detections_per_img``, ``representation_size`` (width of
  the two-layer box head), and every other keyword of torchvision's model class;
* ``frozen_bn`` (default ``true``): backbone BatchNorm as torchvision's FrozenBatchNorm2d,
  whatever the weights (``false`` keeps trainable BatchNorm, governed by the BN policy);
* custom backbones: ``anchor_sizes`` (default ``[32, 64, 128, 256, 512]``),
  ``aspect_ratios`` (default ``[0.5, 1.0, 2.0]``).

``request.weights`` (``model.weights``) of the builder models is a whole-detector file: a
visiontl checkpoint or a torchvision detection state_dict (keys with or without the
``detector.`` prefix); heads of another size are re-initialised and reported.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl.cards import ModelCard
    from visiontl.contracts import BuildRequest, BuiltModel, LayerGroup

#: Builders per task, each with its model class and its default input scale.
BUILDERS: dict[str, dict[str, tuple[str, int]]] = {
    "detection": {
        "fasterrcnn_resnet50_fpn": ("FasterRCNN", 800),
        "fasterrcnn_resnet50_fpn_v2": ("FasterRCNN", 800),
        "fasterrcnn_mobilenet_v3_large_fpn": ("FasterRCNN", 800),
        "fasterrcnn_mobilenet_v3_large_320_fpn": ("FasterRCNN", 320),
        "retinanet_resnet50_fpn": ("RetinaNet", 800),
        "retinanet_resnet50_fpn_v2": ("RetinaNet", 800),
        "fcos_resnet50_fpn": ("FCOS", 800),
        "ssdlite320_mobilenet_v3_large": ("SSD", 320),
    },
    "instance_segmentation": {
        "maskrcnn_resnet50_fpn": ("MaskRCNN", 800),
        "maskrcnn_resnet50_fpn_v2": ("MaskRCNN", 800),
    },
}
#: Detectors over a backbone taken from a classification model (``model.options.backbone``).
CUSTOM: dict[str, dict[str, str]] = {
    "detection": {"fasterrcnn": "FasterRCNN"},
    "instance_segmentation": {"maskrcnn": "MaskRCNN"},
}

#: Options of this plugin (the rest go to torchvision's model class).
_OWN = ("weights", "frozen_bn", "representation_size")
_CUSTOM_ONLY = ("backbone", "anchor_sizes", "aspect_ratios")
#: Key prefixes of a whole-detector state_dict (visiontl's, or torchvision's own).
_DETECTOR_KEYS = ("detector.", "rpn.", "roi_heads.")
#: Model-class keywords the plugin sets itself.
_RESERVED = {
    "num_classes": "the number of classes comes from the dataset",
    "progress": "download progress is managed by visiontl",
    "weights_backbone": "use torchvision:fasterrcnn with model.options.backbone (and pretrained: true or model.weights "
    "for the backbone), or the detector's COCO weights (pretrained: true)",
    "backbone_weights": "name the backbone classifier's file in model.weights (resolved against the data root, and "
    "not needed again by predict and eval)",
    "backbone_pretrained": "set model.pretrained: true (the backbone family's published weights)",
    "trainable_backbone_layers": "visiontl's strategy decides what trains (see strategy.name and the dry-run plan)",
    "backbone": "the builder brings its own backbone; use torchvision:fasterrcnn or torchvision:maskrcnn for another one",
}
_MODULE_KEYWORDS = {
    "backbone", "num_classes", "rpn_anchor_generator", "rpn_head", "box_roi_pool", "box_head", "box_predictor",
    "mask_roi_pool", "mask_head", "mask_predictor", "anchor_generator", "head", "proposal_matcher", "kwargs",
}
#: SSD takes these as attributes after building; its input size is fixed by its anchors.
_SSD_ATTRIBUTES = ("score_thresh", "nms_thresh", "detections_per_img", "topk_candidates")


def _task_of(name: str) -> str | None:
    for task in BUILDERS:
        if name in BUILDERS[task] or name in CUSTOM[task]:
            return task
    return None


def model_names(task: str) -> list[str]:
    """Every detector id name for ``task`` (builders first, then the custom-backbone ones)."""
    return [*BUILDERS.get(task, {}), *CUSTOM.get(task, {})]


def cards(task: str) -> list[ModelCard]:
    """Catalogue cards of the COCO-pretrained detectors for ``task``."""
    from visiontl_torchvision.detection_catalogue import detection_cards

    return list(detection_cards(task))


def groups(built: BuiltModel) -> list[LayerGroup]:
    """Layer groups: backbone stem and stages, neck, then the heads (see ``detection_groups``)."""
    from visiontl_torchvision.detection_groups import detection_groups

    return detection_groups(built.model, built.extras.get("backbone_groups"))


# --------------------------------------------------------------------------- options


def _model_class(name: str) -> Any:
    from torchvision.models import detection
    from torchvision.models.detection.ssd import SSD

    return SSD if name == "SSD" else getattr(detection, name)


def _class_keywords(cls_name: str) -> list[str]:
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    if cls_name == "SSD":
        return list(_SSD_ATTRIBUTES)
    names = [n for n in inspect.signature(_model_class(cls_name)).parameters if n not in _MODULE_KEYWORDS]
    # Unknown keywords of these classes end in GeneralizedRCNNTransform's **kwargs, which
    # ignores them: list the transform's own so that a typo is an error, not a no-op.
    names += [n for n in inspect.signature(GeneralizedRCNNTransform).parameters if n not in ("kwargs", "min_size", "max_size", "image_mean", "image_std")]
    return sorted(set(names))


def _check_options(request: BuildRequest, cls_name: str, options: dict[str, Any], custom: bool) -> dict[str, Any]:
    """The model-class keywords among ``options``; anything unknown is a ConfigError."""
    from visiontl.ids import suggest

    name = request.model_id.name
    for key, why in _RESERVED.items():
        if key in options and not (custom and key == "backbone"):
            raise ConfigError(f"model.options.{key} cannot be set for '{request.model_id}': {why}.", fix=f"remove model.options.{key}")
    if not custom:
        for key in _CUSTOM_ONLY:
            if key in options:
                raise ConfigError(
                    f"model.options.{key} is for detectors over a classification backbone (torchvision:fasterrcnn, "
                    f"torchvision:maskrcnn); '{name}' has its own backbone.",
                    fix=f"remove model.options.{key}, or use model.id torchvision:{'maskrcnn' if cls_name == 'MaskRCNN' else 'fasterrcnn'}",
                )
    valid = _class_keywords(cls_name)
    own = list(_OWN) + (list(_CUSTOM_ONLY) if custom else [])
    for key in options:
        if key not in valid and key not in own:
            close = suggest(key, [*valid, *own], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"model.options.{key} is not an option of torchvision's '{name}'.{hint} Valid: {', '.join([*own, *valid])}.",
                fix=f"remove or correct model.options.{key}",
            )
    return {k: v for k, v in options.items() if k in valid}


def _sized(request: BuildRequest, cls_name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """With ``data.image_size`` set (the dataset already caps the longer side there) and no
    ``min_size``/``max_size`` given, let the model keep that size instead of scaling the
    image back up to torchvision's 800 px."""
    if request.input_size is None or cls_name == "SSD" or "min_size" in kwargs or "max_size" in kwargs:
        return kwargs
    size = int(max(request.input_size))
    return {**kwargs, "min_size": size, "max_size": size}


# --------------------------------------------------------------------------- building


def build(request: BuildRequest) -> BuiltModel:
    """Build ``request.model_id`` with new heads for ``request.num_classes`` classes.

    Raises:
        UnknownModelError: not a detector of this task (did-you-mean over the task's names).
        ConfigError: an option torchvision would reject or silently ignore; a missing backbone.
        WeightsError: COCO weights not cached and the host unreachable (in seconds), or a
            weights file that cannot be read or does not fit.
    """
    from visiontl.ids import unknown_model

    name = request.model_id.name
    task = request.task
    if name not in BUILDERS.get(task, {}) and name not in CUSTOM.get(task, {}):
        other = _task_of(name)
        if other is not None:
            raise ConfigError(
                f"'{request.model_id}' serves the task '{other}', not '{task}'.",
                fix=f"set task: {other}, or pick one of: {', '.join(model_names(task))}",
            )
        raise unknown_model(request.model_id, model_names(task))
    options = dict(request.options)
    if name in CUSTOM[task]:
        return _build_custom(request, CUSTOM[task][name], options)
    return _build_builder(request, BUILDERS[task][name][0], options)


def _finish(request: BuildRequest, detector: nn.Module, report: Any, extras: dict[str, Any], load_file: bool = True) -> BuiltModel:
    from visiontl.contracts import BuiltModel, Preprocessing
    from visiontl.weights import load_matching, read_state_dict
    from visiontl_torchvision.detection_wrapper import TorchvisionDetector

    masks = request.task == "instance_segmentation"
    model = TorchvisionDetector(detector, request.num_classes, masks=masks)
    if request.weights is not None and load_file:
        # A whole-detector file: a visiontl checkpoint (keys under "detector.") or a
        # torchvision state_dict (keys without it).
        report = load_matching(
            model,
            read_state_dict(request.weights),
            f"file:{request.weights}",
            key_map=lambda k: k if k.startswith("detector.") else f"detector.{k}",
        )
    transform = detector.transform
    size = int(transform.min_size[-1]) if isinstance(transform.min_size, (tuple, list)) else int(transform.min_size)
    pre = Preprocessing(
        input_size=(size, size),
        mean=tuple(float(v) for v in transform.image_mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in transform.image_std),  # type: ignore[arg-type]
        crop_pct=1.0,
    )
    extras = {**extras, "num_classes_with_background": request.num_classes + 1, "max_size": int(transform.max_size)}
    return BuiltModel(model=model, model_id=request.model_id, task=request.task, preprocessing=pre, weights=report, extras=extras)


def _build_builder(request: BuildRequest, cls_name: str, options: dict[str, Any]) -> BuiltModel:
    import torchvision

    from visiontl.contracts import WeightsReport
    from visiontl_torchvision import weights as tv_weights
    from visiontl_torchvision.detection_heads import replace_heads, set_batchnorm

    choice = options.pop("weights", None)
    frozen_bn = bool(options.pop("frozen_bn", True))
    representation = options.pop("representation_size", None)
    kwargs = _sized(request, cls_name, _check_options(request, cls_name, options, custom=False))
    ssd_attrs = kwargs if cls_name == "SSD" else {}
    builder_kwargs = {} if cls_name == "SSD" else kwargs
    enum = tv_weights.weights_enum(request.model_id, choice) if choice is not None else None
    use_hub = request.pretrained and request.weights is None
    if use_hub and enum is None:
        enum = tv_weights.weights_enum(request.model_id)

    def make(weights: Any) -> nn.Module:
        extra = dict(builder_kwargs)
        if weights is not None:
            # Without this torchvision freezes the early backbone layers itself; visiontl's
            # plan decides what trains.
            extra["trainable_backbone_layers"] = 6 if "mobilenet" in request.model_id.name else 5
        try:
            return torchvision.models.get_model(request.model_id.name, weights=weights, weights_backbone=None, progress=False, **extra)
        except TypeError as exc:
            raise ConfigError(
                f"model.options rejected by torchvision's '{request.model_id.name}': {exc}.",
                fix="use keyword arguments of torchvision's detection model class (see visiontl docs/detection.md)",
            ) from None

    detector = tv_weights.load_pretrained(request.model_id, enum, make) if use_hub else make(None)
    loaded = len(detector.state_dict()) if use_hub else 0
    for key, value in ssd_attrs.items():
        setattr(detector, key, value)
    set_batchnorm(detector.backbone, frozen=frozen_bn)
    new_keys = replace_heads(detector, request.num_classes + 1, representation)
    if use_hub:
        report = WeightsReport(source=f"pretrained:torchvision:{enum}", loaded=loaded - len(new_keys), reinitialised=[f"detector.{k}" for k in new_keys])
    else:
        report = WeightsReport(source="random")
    return _finish(request, detector, report, {"weights_enum": str(enum)} if enum is not None else {})


def _build_custom(request: BuildRequest, cls_name: str, options: dict[str, Any]) -> BuiltModel:
    from torchvision.models.detection import FasterRCNN, MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    from visiontl.contracts import WeightsReport
    from visiontl_torchvision.detection_backbone import classifier_backbone

    spec = options.pop("backbone", None)
    if not spec:
        raise ConfigError(
            f"'{request.model_id}' needs model.options.backbone: the classification model whose features it detects on.",
            fix="set e.g. model.options.backbone: torchvision:squeezenet1_1 (with model.weights: FILE or pretrained: true), "
            "or use a complete detector such as torchvision:fasterrcnn_resnet50_fpn_v2",
        )
    frozen_bn = bool(options.pop("frozen_bn", True))
    representation = int(options.pop("representation_size", None) or 1024)
    sizes = tuple(int(s) for s in options.pop("anchor_sizes", (32, 64, 128, 256, 512)))
    ratios = tuple(float(r) for r in options.pop("aspect_ratios", (0.5, 1.0, 2.0)))
    if options.pop("weights", None) is not None:
        _no_enum(request)
    kwargs = _sized(request, cls_name, _check_options(request, cls_name, options, custom=True))

    # model.weights: the backbone classifier's file, unless it holds a whole detector.
    whole = request.weights is not None and _whole_detector_file(request.weights)
    backbone_file = None if whole else request.weights
    backbone = classifier_backbone(
        str(spec), pretrained=request.pretrained and request.weights is None, weights=backbone_file, frozen_bn=frozen_bn, prefix="detector.backbone."
    )
    channels = backbone.module.out_channels
    n = request.num_classes + 1
    common: dict[str, Any] = {
        "rpn_anchor_generator": AnchorGenerator(sizes=(sizes,), aspect_ratios=(ratios,)),
        "box_roi_pool": MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2),
        "box_head": TwoMLPHead(channels * 7 * 7, representation),
        "box_predictor": FastRCNNPredictor(representation, n),
        **kwargs,
    }
    try:
        if cls_name == "MaskRCNN":
            detector: nn.Module = MaskRCNN(
                backbone.module,
                None,
                mask_roi_pool=MultiScaleRoIAlign(featmap_names=["0"], output_size=14, sampling_ratio=2),
                mask_predictor=MaskRCNNPredictor(256, 256, n),
                **common,
            )
        else:
            detector = FasterRCNN(backbone.module, None, **common)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.options rejected by torchvision's {cls_name}: {exc}.", fix="check the size options") from None
    src = backbone.weights
    report = WeightsReport(
        source=f"backbone {backbone.model_id} {src.source}",
        loaded=src.loaded,
        missing=[f"detector.backbone.model.{k}" for k in src.missing],
        unexpected=list(src.unexpected),
        reinitialised=list(src.reinitialised),
    )
    return _finish(request, detector, report, {"backbone": backbone.model_id, "backbone_groups": backbone.groups}, load_file=whole)


def _no_enum(request: BuildRequest) -> None:
    raise ConfigError(
        f"model.options.weights picks published detector weights; '{request.model_id}' is assembled from a backbone and has none.",
        fix="remove model.options.weights; use model.weights (a file) or pretrained: true for the backbone",
    )


def _whole_detector_file(path: Path) -> bool:
    """Whether ``path`` holds a whole detector (else: the backbone classifier's weights)."""
    from visiontl.weights import read_state_dict

    return any(k.startswith(_DETECTOR_KEYS) for k in read_state_dict(path))
