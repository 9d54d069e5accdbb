"""Building SMP models for the user's classes.

``model.options`` are SMP's constructor arguments (``decoder_channels``, ``encoder_depth``,
``encoder_output_stride``, ``decoder_attention_type`` ...), checked against the architecture's
signature because SMP silently ignores unknown keywords for its own encoders; ``tu-`` encoders
also take timm ``create_model`` keywords (``drop_path_rate`` ...). ``encoder_weights`` picks
SMP's published weights (``imagenet``, ``ssl``, ``swsl`` ...) when ``model.pretrained``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from visiontl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl.contracts import BuildRequest, BuiltModel, Preprocessing
    from visiontl_smp.ids import SmpName

#: Options visiontl sets itself, with the reason.
RESERVED = {
    "classes": "the number of classes comes from the dataset",
    "encoder_name": "the encoder is part of the model id (smp:<arch>-<encoder>)",
    "in_channels": "images are read as RGB (3 channels)",
    "activation": "the losses and metrics take logits",
    "aux_params": "an auxiliary classification head changes the model's outputs",
}

#: Default input size: a multiple of 32, the largest encoder output stride.
DEFAULT_SIZE = (256, 256)

#: Normalisation of SMP's non-ImageNet-convention encoders (their published weights expect it).
_MEAN_STD: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "inceptionv4": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "inceptionresnetv2": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "xception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def _arch_class(arch: str) -> Any:
    import segmentation_models_pytorch as smp

    from visiontl_smp.ids import ARCHITECTURES

    return getattr(smp, ARCHITECTURES[arch])


def check_options(name: SmpName, options: dict[str, Any], model_id: str) -> None:
    """Reject reserved options, and unknown ones that SMP would silently drop.

    Raises:
        ConfigError: naming the option and the valid ones.
    """
    for key, why in RESERVED.items():
        if key in options:
            raise ConfigError(f"model.options.{key} cannot be set for '{model_id}': {why}.", fix=f"remove model.options.{key}")
    params = inspect.signature(_arch_class(name.arch).__init__).parameters
    known = sorted(n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n not in RESERVED)
    unknown = sorted(set(options) - set(known) - {"encoder_weights"})
    if unknown and not name.is_timm_universal:
        from visiontl.ids import suggest

        close = suggest(unknown[0], known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"model.options.{unknown[0]} is not an option of SMP's {_arch_class(name.arch).__name__} (it would be silently ignored).{hint} "
            f"Valid: {', '.join(known)}.",
            fix=f"remove or correct model.options.{unknown[0]}",
        )


def make_model(name: SmpName, num_classes: int, options: dict[str, Any], encoder_weights: Any, model_id: str) -> nn.Module:
    """Call the SMP architecture; its argument errors become ConfigErrors."""
    cls = _arch_class(name.arch)
    try:
        return cls(encoder_name=name.encoder, encoder_weights=encoder_weights, classes=num_classes, **options)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ConfigError(
            f"SMP cannot build '{model_id}' with model.options {options or '{}'}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            fix="check the architecture/encoder pair and the options (see docs/segmentation.md)",
        ) from None


def preprocessing(name: SmpName, model: nn.Module) -> Preprocessing:
    """Input convention: timm's pretrained config for ``tu-`` encoders, ImageNet statistics for
    SMP's (0.5/0.5 for the Inception/Xception family), and a side that is a multiple of 32."""
    from visiontl.contracts import Preprocessing

    mean, std = _MEAN_STD.get(name.encoder, (Preprocessing().mean, Preprocessing().std))
    size = DEFAULT_SIZE
    if name.is_timm_universal:
        from timm.models import get_pretrained_cfg

        try:
            cfg = get_pretrained_cfg(name.timm_name)
        except RuntimeError:
            cfg = None
        if cfg is not None:
            mean = tuple(float(v) for v in cfg.mean)  # type: ignore[assignment]
            std = tuple(float(v) for v in cfg.std)  # type: ignore[assignment]
            if getattr(cfg, "fixed_input_size", False):
                size = (int(cfg.input_size[1]), int(cfg.input_size[2]))
    patch_embed = getattr(getattr(model.encoder, "model", None), "patch_embed", None)
    img_size = getattr(patch_embed, "img_size", None)
    if img_size is not None and not getattr(patch_embed, "dynamic_img_size", False):
        size = (int(img_size[0]), int(img_size[1]))  # ViTs (DPT) take their own size only
    return Preprocessing(input_size=size, mean=mean, std=std, interpolation="bilinear", crop_pct=1.0)


def build(request: BuildRequest) -> BuiltModel:
    """Build ``smp:<arch>-<encoder>`` with ``num_classes`` output channels.

    Weights: a local file (``request.weights``) wins; else published encoder weights when
    ``request.pretrained``; else random. The decoder and head are always new.

    Raises:
        UnknownModelError: unknown architecture or encoder (did-you-mean).
        ConfigError: options SMP rejects or would ignore.
        WeightsError: weights that cannot be had (offline, unreadable, not fitting).
    """
    from visiontl.contracts import BuiltModel, WeightsReport
    from visiontl_smp.ids import parse_smp_name
    from visiontl_smp.weights import load_file, pretrained_build

    name = parse_smp_name(request.model_id)
    model_id = str(request.model_id)
    options = dict(request.options)
    check_options(name, options, model_id)
    choice = options.pop("encoder_weights", None)
    if request.weights is not None:
        model = make_model(name, request.num_classes, options, None, model_id)
        report = load_file(model, name, model_id, request.weights)
    elif request.pretrained:
        model, report = pretrained_build(name, model_id, lambda w: make_model(name, request.num_classes, options, w, model_id), choice)
    else:
        model = make_model(name, request.num_classes, options, None, model_id)
        report = WeightsReport(source="random")
    return BuiltModel(
        model=model,
        model_id=request.model_id,
        task=request.task,
        preprocessing=preprocessing(name, model),
        weights=report,
        extras={"architecture": name.arch, "encoder": name.encoder},
    )
