"""Building a YOLO model with a new head, from its config (scratch), a local file or the
published COCO weights.

* The network is built from the Ultralytics model config (``yolov8n.yaml`` ...) with ``nc`` set
  to the user's classes, so the head is new; weights then fill every tensor whose name and
  shape match (the report lists the re-initialised ones: the class outputs of the head, and the
  whole class branch when the class count changes its width).
* ``weights: PATH``: an Ultralytics checkpoint (its ``ema``/``model``), a state_dict, or a
  visiontl checkpoint. An Ultralytics checkpoint pickles its network: it is read through an
  allow-list of the classes such checkpoints need (:mod:`visiontl_ultralytics.checkpoint`), and
  a file that names anything else is refused unless ``model.trust_weights`` is set.
* ``pretrained: true``: ``<name>.pt`` from Ultralytics' weights directory when present (never
  the working directory); otherwise a bounded probe of the asset host, then Ultralytics' own
  downloader into its weights directory. The file is read through the same allow-list. Offline, the probe fails within seconds with a
  :class:`~visiontl.errors.WeightsError` naming the file, the URL and where to put it.
* Ultralytics' ``DFL`` layer holds a fixed projection (``arange(16)``) as a parameter that its
  trainer always freezes (ultralytics#9371); here it is a buffer, so it never trains and never
  shows up as a trainable tensor in a plan. The state_dict keys are unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.contracts import BuiltModel, Preprocessing, WeightsReport
from visiontl.errors import ConfigError, WeightsError
from visiontl_ultralytics import offline
from visiontl_ultralytics.names import ModelSpec, resolve

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl.contracts import BuildRequest

#: ``model.options`` this plugin understands, with their defaults.
OPTIONS: dict[str, Any] = {
    "imgsz": 640,  # training and inference size (data.image_size wins when set)
    "conf": 0.001,  # NMS score floor of eval-mode outputs
    "iou": 0.7,  # NMS IoU threshold
    "max_det": 300,  # detections per image
    "ultralytics": {},  # extra Ultralytics train arguments (augmentation hyperparameters ...)
    "ultralytics_val": False,  # also run Ultralytics' own validator each epoch (recorded as ultralytics/*)
    "keep_ultralytics_weights": False,  # keep Ultralytics' own last.pt/best.pt per phase
}


def parse_options(options: dict[str, Any]) -> dict[str, Any]:
    """``model.options`` with defaults filled in.

    Raises:
        ConfigError: an unknown option (with the valid ones) or a value of the wrong type.
    """
    from visiontl.ids import suggest

    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        close = suggest(unknown[0], OPTIONS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"Unknown model.options key '{unknown[0]}' for an Ultralytics model.{hint}",
            fix=f"valid keys: {', '.join(OPTIONS)}",
        )
    out = {**OPTIONS, **options}
    for key in ("imgsz", "max_det"):
        if not isinstance(out[key], int) or out[key] < 1:
            raise ConfigError(f"model.options.{key} must be a positive integer, not {out[key]!r}.")
    for key in ("conf", "iou"):
        if not isinstance(out[key], (int, float)) or not 0 <= out[key] <= 1:
            raise ConfigError(f"model.options.{key} must be a number between 0 and 1, not {out[key]!r}.")
    if not isinstance(out["ultralytics"], dict):
        raise ConfigError("model.options.ultralytics must be a mapping of Ultralytics train arguments.")
    return out


def build(request: BuildRequest) -> BuiltModel:
    """Build ``request.model_id`` for ``request.task`` with ``request.num_classes`` classes."""
    from visiontl_ultralytics.model import YoloModel

    spec = resolve(request.model_id, request.task)
    options = parse_options(dict(request.options))
    # Find the published weights before building anything: offline, fail within seconds.
    published = pretrained_file(spec, str(request.model_id)) if request.pretrained and request.weights is None else None
    net = make_network(spec, request.num_classes, request.class_names)
    if request.input_size:
        # data.image_size (or benchmark --input-size) wins over model.options.imgsz, as in
        # training; YOLO letterboxes to a multiple of its largest stride, 32.
        options["imgsz"] = int(math.ceil(max(request.input_size) / 32) * 32)
    wrapper = YoloModel(net, segment=spec.segment, imgsz=options["imgsz"], conf=options["conf"],
                        iou=options["iou"], max_det=options["max_det"])
    if request.weights is not None:
        report = load_file(wrapper, request.weights, trust=request.trust_weights)
    elif published is not None:
        report = load_file(wrapper, published, pretrained=True)
    else:
        report = WeightsReport(source="random")
    head = net.model[-1]
    return BuiltModel(
        model=wrapper,
        model_id=request.model_id,
        task=request.task,
        # YOLO takes RGB in [0, 1] without normalisation: the identity mean/std say so.
        preprocessing=Preprocessing(input_size=(options["imgsz"], options["imgsz"]), mean=(0.0, 0.0, 0.0),
                                    std=(1.0, 1.0, 1.0), interpolation="bilinear", crop_pct=1.0),
        weights=report,
        extras={
            "ultralytics": {
                "config": spec.config,
                "segment": spec.segment,
                "head": head_style(head),
                "options": options,
            }
        },
    )


def head_style(head: Any) -> str:
    """Which head Ultralytics built: its v8 head (``legacy``) or the YOLO11-style one."""
    legacy = getattr(head, "legacy", None)
    if legacy is None:
        return type(head).__name__
    return f"{type(head).__name__} ({'YOLOv8-style, legacy=True' if legacy else 'YOLO11-style, legacy=False'})"


def make_network(spec: ModelSpec, num_classes: int, class_names: tuple[str, ...] = ()) -> nn.Module:
    """The Ultralytics network of ``spec`` with ``num_classes`` outputs (fresh initialisation)."""
    offline.import_ultralytics()
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel, SegmentationModel

    if num_classes < 1:
        raise ConfigError(f"A YOLO model needs at least one class, got {num_classes}.")
    cls = SegmentationModel if spec.segment else DetectionModel
    with offline.ultralytics_logging(verbose=False):
        net = cls(spec.config, nc=num_classes, verbose=False)
    net.names = {i: (class_names[i] if i < len(class_names) else str(i)) for i in range(num_classes)}
    net.args = get_cfg()  # the loss reads its gains (box, cls, dfl) from here
    dfl_as_buffer(net)
    return net


def dfl_as_buffer(net: nn.Module) -> None:
    """Turn each ``DFL`` layer's fixed projection weight from a frozen parameter into a buffer."""
    for module in net.modules():
        if type(module).__name__ == "DFL" and "weight" in module.conv._parameters:
            weight = module.conv.weight.detach().clone()
            del module.conv.weight
            module.conv.register_buffer("weight", weight)


# ---------------------------------------------------------------------- weights


def read_weights(path: Path, *, trust: bool = False) -> dict[str, Any]:
    """Tensors by name from a state_dict file, a visiontl checkpoint or an Ultralytics checkpoint.

    Nothing stored in the file runs: state_dicts and visiontl checkpoints are read as tensors
    only, Ultralytics checkpoints through an allow-list of the layer and data classes they need
    (:mod:`visiontl_ultralytics.checkpoint`). ``trust`` allows a full unpickle of a file that
    needs more (with a warning).

    Raises:
        WeightsError: the file cannot be read, holds no model weights, or would run code.
    """
    from visiontl.weights import read_state_dict
    from visiontl_ultralytics.checkpoint import read_checkpoint

    try:
        return dict(read_state_dict(path))
    except WeightsError:
        if path.suffix == ".safetensors":
            raise
    return read_checkpoint(path, trust=trust)


def load_file(wrapper: nn.Module, path: Path, pretrained: bool = False, trust: bool = False) -> WeightsReport:
    """Load every matching tensor of ``path`` into ``wrapper`` (keys with or without ``net.``).

    Args:
        trust: the user vouched for the file (see :func:`read_weights`).
    """
    from visiontl.weights import load_matching

    own = set(wrapper.state_dict())

    def key_map(key: str) -> str | None:
        if key in own:
            return key
        return f"net.{key}" if f"net.{key}" in own else None

    source = f"pretrained:{path}" if pretrained else f"file:{path}"
    report = load_matching(wrapper, read_weights(path, trust=trust), source, key_map)
    # the wrapper's own inference size is not a network weight
    report.missing = [k for k in report.missing if k != "input_size"]
    return report


def weights_dir() -> Path:
    """Ultralytics' weights directory (its ``weights_dir`` setting), where downloads go."""
    offline.import_ultralytics()
    from ultralytics.utils import SETTINGS

    return Path(SETTINGS["weights_dir"])


def pretrained_file(spec: ModelSpec, model_id: str) -> Path:
    """The published checkpoint of ``spec``: found locally, else downloaded (online only).

    Raises:
        WeightsError: no weights are published for the model, the host is unreachable (within
            seconds), or the download failed.
    """
    from visiontl.weights import require_reachable

    if spec.weights_file is None or spec.weights_url is None:
        raise WeightsError(
            f"Ultralytics publishes no pretrained weights for '{model_id}'.",
            fix="set model.pretrained: false (train from scratch), give model.weights, or use a model with "
            "published weights (yolov8n..x, yolov8n-seg..x-seg, yolo11n..x, yolo11n-seg..x-seg)",
        )
    # Only Ultralytics' weights directory: a same-named file in the working directory is not
    # picked up (a stray or planted yolov8n.pt would otherwise be loaded without being named).
    folder = weights_dir()
    target = folder / spec.weights_file
    if target.is_file():
        return target
    require_reachable(
        spec.weights_url,
        model_id,
        fix=f"download {spec.weights_url} into {folder} (Ultralytics' weights_dir), or set model.weights "
        f"to a local .pt file, or set model.pretrained: false",
    )
    from ultralytics.utils.downloads import attempt_download_asset

    try:
        with offline.network_allowed(), offline.ultralytics_logging(verbose=True):
            found = Path(attempt_download_asset(str(target)))
    except Exception as exc:  # noqa: BLE001 - a failed download becomes one clear message
        raise WeightsError(
            f"Downloading {spec.weights_url} for '{model_id}' failed: {type(exc).__name__}: {exc}",
            fix=f"download it by hand into {folder}, or set model.weights to a local .pt file",
        ) from None
    if not found.is_file():
        raise WeightsError(
            f"Downloading {spec.weights_url} for '{model_id}' produced no file at {found}.",
            fix=f"download it by hand into {folder}, or set model.weights to a local .pt file",
        )
    return found
