"""Encoder weights for SMP models: published, from a file, or from a visiontl classifier.

* Published (``model.pretrained: true``): SMP's own encoders come from the Hugging Face Hub
  (``smp-hub/<encoder>.<weights>``); ``tu-`` encoders from timm's pretrained config (the
  ``.tag`` in the id picks the weights). Cached files are loaded with the hub offline; when the
  files are not cached and the host is unreachable, a WeightsError comes within seconds.
* A file (``model.weights``): a whole-model state dict (e.g. a visiontl segmentation
  checkpoint of the same id), an encoder state dict (keys with or without ``encoder.``), or
  a visiontl *classification* checkpoint (``checkpoints/best.pt`` of a timm or torchvision
  classifier whose architecture is the encoder's): its backbone is mapped onto the encoder and
  its classifier left out, so a backbone fine-tuned on your own images can be segmented with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from visiontl.contracts import WeightsReport
from visiontl.errors import ConfigError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from visiontl_smp.ids import SmpName

_HF_FILES = ("model.safetensors", "pytorch_model.bin")


def _fix(model_id: str) -> str:
    return (
        "download the weights once on a connected machine (the Hugging Face cache ~/.cache/huggingface can be copied), "
        f"or set model.weights to a local file (an encoder state dict or a visiontl classification checkpoint), "
        f"or set model.pretrained: false for '{model_id}'"
    )


def _hf_cached(repo_id: str, filenames: tuple[str, ...], revision: str | None = None) -> bool:
    """Whether every one of ``filenames`` (or, for weights, any one) is in the hub cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = [try_to_load_from_cache(repo_id, f, revision=revision) for f in filenames]
    return any(isinstance(p, str) and Path(p).is_file() for p in found)


def smp_weights_choice(name: SmpName, choice: str | None, model_id: str) -> tuple[str, str, str]:
    """(weights name, hub repo id, revision) of an SMP encoder's published weights.

    Raises:
        WeightsError: the encoder has no published weights.
        ConfigError: ``choice`` is not one of them.
    """
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders[name.encoder].get("pretrained_settings", {})
    if not settings:
        raise WeightsError(f"SMP publishes no pretrained weights for the encoder of '{model_id}'.", fix="set model.pretrained: false or model.weights: PATH")
    choice = choice or ("imagenet" if "imagenet" in settings else next(iter(settings)))
    if choice not in settings:
        raise ConfigError(
            f"model.options.encoder_weights '{choice}' is not published for '{name.encoder}'. Valid: {', '.join(settings)}.",
            fix="pick one of them, or leave encoder_weights out (imagenet)",
        )
    entry = settings[choice]
    return choice, str(entry["repo_id"]), str(entry.get("revision") or "main")


def pretrained_build(name: SmpName, model_id: str, make: Callable[[Any], nn.Module], choice: str | None) -> tuple[nn.Module, WeightsReport]:
    """Build with published encoder weights: from the cache offline, or downloaded when the
    host answers; a clear WeightsError within seconds otherwise.

    Args:
        name: the parsed id.
        model_id: the id, for messages.
        make: builds the model given SMP's ``encoder_weights`` argument.
        choice: ``model.options.encoder_weights`` (SMP encoders only).
    """
    from visiontl.weights import hf_offline, require_reachable

    if name.is_timm_universal:
        if choice not in (None, True, "imagenet"):
            raise ConfigError(
                f"model.options.encoder_weights does not apply to timm universal encoders ('{name.encoder}').",
                fix=f"pick timm weights with a tag in the id, e.g. 'smp:{name.arch}-tu-{name.encoder_base}.<tag>'",
            )
        repo, url = _timm_source(name, model_id)
        cached = (repo is not None and _hf_cached(repo, _HF_FILES)) or (repo is None and url is not None and _url_cached(url))
        where = f"https://huggingface.co/{repo}" if repo else str(url)
        source = f"hf-hub:{repo}" if repo else str(url)
        encoder_weights: Any = True
    else:
        choice, repo, revision = smp_weights_choice(name, choice, model_id)
        cached = _hf_cached(repo, ("model.safetensors",), revision) and _hf_cached(repo, ("config.json",), revision)
        where = f"https://huggingface.co/{repo}"
        source = f"hf-hub:{repo}"
        encoder_weights = choice
    if cached:
        with hf_offline():
            model = _guarded(lambda: make(encoder_weights), model_id, where)
        source += " (cache)"
    else:
        require_reachable(where, model_id, _fix(model_id))
        model = _guarded(lambda: make(encoder_weights), model_id, where)
    loaded = len(cast("nn.Module", model.encoder).state_dict())
    missing = [k for k in model.state_dict() if not k.startswith("encoder.") and not k.endswith("num_batches_tracked")]
    return model, WeightsReport(source=f"pretrained:{source}", loaded=loaded, missing=missing)


def _guarded(build: Callable[[], nn.Module], model_id: str, where: str) -> nn.Module:
    try:
        return build()
    except (ConfigError, WeightsError):
        raise
    except Exception as exc:  # noqa: BLE001 - any download or load failure becomes one clear message
        raise WeightsError(
            f"Loading pretrained encoder weights for '{model_id}' from {where} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
            fix=_fix(model_id),
        ) from None


def _timm_source(name: SmpName, model_id: str) -> tuple[str | None, str | None]:
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name.timm_name)
    except RuntimeError as exc:  # an invalid tag
        raise ConfigError(f"'{model_id}': {exc}", fix=f"list the tags with: python -c \"import timm; print(timm.list_pretrained('{name.encoder_base}*'))\"") from None
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise WeightsError(f"timm publishes no pretrained weights for the encoder of '{model_id}'.", fix="set model.pretrained: false or model.weights: PATH")
    return cfg.hf_hub_id or None, str(cfg.url) if cfg.url else None


def _url_cached(url: str) -> bool:
    import os

    import torch

    return os.path.isfile(os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url.split("?")[0])))


# --------------------------------------------------------------------------- files


def _flatten_first(key: str) -> str:
    """timm's feature wrappers flatten the first level of a model: ``stages.0.x`` -> ``stages_0.x``."""
    head, sep, rest = key.partition(".")
    if not sep:
        return key
    second, sep2, tail = rest.partition(".")
    return f"{head}_{second}{sep2}{tail}" if second.isdigit() else key


def encoder_key_map(model: nn.Module) -> Callable[[str], str | None]:
    """A key map from whole-model, encoder-only or classifier keys to the model's keys."""
    own = set(model.state_dict())

    def key_map(key: str) -> str | None:
        for candidate in (key, _flatten_first(key)):
            for prefix in ("", "encoder.", "encoder.model."):
                if prefix + candidate in own:
                    return prefix + candidate
        return None

    return key_map


def _read(path: Path) -> Any:
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - read_state_dict reports unreadable files clearly
        return None


def load_file(model: nn.Module, name: SmpName, model_id: str, path: Path) -> WeightsReport:
    """Load ``model.weights`` into an SMP model (see the module docstring).

    Raises:
        WeightsError: unreadable file, a classification checkpoint of another architecture,
            or nothing that fits.
    """
    from visiontl.weights import load_matching, read_state_dict

    obj = _read(path)
    if isinstance(obj, dict) and obj.get("format") == "visiontl-checkpoint":
        from visiontl.contracts import DENSE_MAP, IMAGE_VECTOR
        from visiontl.tasks.registry import output_of

        task = obj.get("task")
        source_id = str(obj.get("model_id", "?"))
        # By the run's output contract: an image-vector run (classification, a regression ...)
        # holds a backbone, a dense-map run a whole model.
        output = output_of(str(task or ""))
        if output == IMAGE_VECTOR:
            return _from_classifier(model, name, model_id, path, source_id, obj["model"], str(task))
        if output != DENSE_MAP:
            raise WeightsError(
                f"'{path}' is a visiontl {task} checkpoint ({source_id}); its weights do not fit '{model_id}'.",
                fix="use a segmentation checkpoint, a classification checkpoint of the encoder's architecture, or an encoder state dict",
            )
        return load_matching(model, obj["model"], f"file:{path} ({source_id} {task} run)")
    state = read_state_dict(path)
    return load_matching(model, state, f"file:{path}", key_map=encoder_key_map(model))


def _from_classifier(model: nn.Module, name: SmpName, model_id: str, path: Path, source_id: str, state: dict[str, Any],
                     task: str = "classification") -> WeightsReport:
    from visiontl.weights import load_matching

    family, _, arch = source_id.partition(":")
    base = arch.split(".", 1)[0]
    if base != name.encoder_base:
        hint = f"smp:{name.arch}-tu-{base}" if family == "timm" else f"smp:{name.arch}-{base}"
        raise WeightsError(
            f"'{path}' is a {task} checkpoint of {source_id}, whose architecture '{base}' is not the encoder "
            f"'{name.encoder}' of '{model_id}'.",
            fix=f"use an id with that encoder, e.g. '{hint}'",
        )
    key_map = encoder_key_map(model)

    def encoder_only(key: str) -> str | None:
        target = key_map(key)
        return target if target is not None and target.startswith("encoder.") else None

    report = load_matching(model, state, f"checkpoint-backbone:{path} ({source_id} {task} run)", key_map=encoder_only)
    encoder_keys = [k for k in cast("nn.Module", model.encoder).state_dict() if not k.endswith("num_batches_tracked")]
    left = {*report.missing, *report.reinitialised}
    not_loaded = [k for k in encoder_keys if f"encoder.{k}" in left]
    if not_loaded:
        report.source += f"; {len(not_loaded)} encoder tensor(s) not in the checkpoint"
    return report
