"""torchvision's published weights: picking an enum value, the hub cache, failing fast offline.

torchvision downloads through ``torch.hub.load_state_dict_from_url``, which reads
``<torch hub dir>/checkpoints/<file name of the URL>`` when it is there and otherwise opens the
URL with no timeout of its own. Before a download this module asks
:func:`visiontl.weights.require_reachable`, so an offline machine gets a clear
:class:`~visiontl.errors.WeightsError` in seconds instead of a hang or a socket traceback.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from visiontl.contracts import Preprocessing
from visiontl.errors import ConfigError, WeightsError
from visiontl.ids import ModelId

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: The value of ``model.options.weights`` used when none is given.
DEFAULT_CHOICE = "DEFAULT"


def weights_enum(model_id: ModelId, choice: str = DEFAULT_CHOICE) -> Any:
    """The torchvision weights enum value ``choice`` names for ``model_id``.

    Args:
        model_id: a torchvision model id (its name is a builder name).
        choice: ``DEFAULT``, a value name such as ``IMAGENET1K_V2`` (any case), or the full
            ``ResNet50_Weights.IMAGENET1K_V2``.

    Raises:
        ConfigError: ``choice`` names no weights of this model; the message lists the valid ones.

    Example:
        >>> weights_enum(ModelId("torchvision", "resnet50"), "IMAGENET1K_V1")  # doctest: +SKIP
        ResNet50_Weights.IMAGENET1K_V1
    """
    from torchvision.models import get_model_weights

    enum_cls = get_model_weights(model_id.name)
    text = str(choice).strip()
    prefix = f"{enum_cls.__name__}."
    if text.startswith(prefix):
        text = text[len(prefix):]
    # __members__ includes the DEFAULT alias, which plain iteration over the enum skips.
    members = {name.upper(): value for name, value in enum_cls.__members__.items()}
    if text.upper() in members:
        return members[text.upper()]
    valid = ", ".join(enum_cls.__members__)
    raise ConfigError(
        f"Unknown torchvision weights '{choice}' for '{model_id}'. Valid: {valid}.",
        fix="set model.options.weights to one of them (or leave it out for DEFAULT)",
    )


def preprocessing(weights: Any | None) -> Preprocessing:
    """The input convention of ``weights`` (from its eval transforms), or ImageNet defaults.

    ``crop_pct`` is crop size / resize size: torchvision resizes the short side to
    ``resize_size`` and centre-crops ``crop_size``.
    """
    if weights is None:
        return Preprocessing()
    transform = weights.transforms()
    crop = _first(getattr(transform, "crop_size", None), 224)
    resize = _first(getattr(transform, "resize_size", None), crop)
    mean = tuple(float(v) for v in getattr(transform, "mean", Preprocessing().mean))
    std = tuple(float(v) for v in getattr(transform, "std", Preprocessing().std))
    mode = getattr(transform, "interpolation", None)
    interpolation = str(getattr(mode, "value", mode or "bilinear"))
    return Preprocessing(
        input_size=(crop, crop),
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        interpolation=interpolation,
        crop_pct=crop / resize if resize else 1.0,
    )


def _first(value: Any, default: int) -> int:
    """torchvision stores sizes as one-element lists; ``None`` means "not resized"."""
    if value is None:
        return default
    if isinstance(value, (list, tuple)):
        return int(value[0]) if value else default
    return int(value)


def cache_file(url: str) -> Path:
    """Where torch hub keeps (or would keep) the file downloaded from ``url``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _fix(model_id: ModelId, url: str, cached: Path) -> str:
    return (
        f"copy {os.path.basename(cached)} (from {url}) into {cached.parent}, "
        f"or set model.weights to a local state_dict file, or set model.pretrained: false for '{model_id}'"
    )


def load_pretrained(model_id: ModelId, weights: Any, make: Callable[[Any], nn.Module]) -> nn.Module:
    """Build the ImageNet-shaped model with ``weights`` loaded, from the cache or the network.

    ``make(weights)`` calls the torchvision builder with those weights: the builder knows the
    constructor arguments its weights need (1000 classes, ViT's image size, GoogLeNet's
    input transform and auxiliary heads) and loads them strictly, so every tensor is checked.

    Raises:
        WeightsError: not cached and the host is unreachable (within seconds), the download
            failed, the cached file is unreadable, or the weights do not fit the options.
    """
    url = str(weights.url)
    cached = cache_file(url)
    where = str(cached) if cached.is_file() else url
    if not cached.is_file():
        from visiontl.weights import require_reachable

        require_reachable(url, str(model_id), fix=_fix(model_id, url, cached))
    try:
        return make(weights)
    except RuntimeError as exc:
        if "state_dict" in str(exc):
            raise WeightsError(
                f"torchvision weights {weights} do not fit '{model_id}' as built with its "
                f"model.options: {str(exc).splitlines()[0][:200]}",
                fix="remove the model.options that change the architecture, or set model.pretrained: false",
            ) from None
        raise _load_failed(model_id, weights, where, exc, url, cached) from None
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        raise _load_failed(model_id, weights, where, exc, url, cached) from None


def _load_failed(model_id: ModelId, weights: Any, where: str, exc: BaseException, url: str, cached: Path) -> WeightsError:
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    fix = _fix(model_id, url, cached)
    if cached.is_file():
        fix = f"delete the damaged {cached} and try again, or {fix}"
    return WeightsError(
        f"Loading torchvision weights {weights} for '{model_id}' from {where} failed: {type(exc).__name__}: {first}",
        fix=fix,
    )
