"""Loading timm's published weights without hanging when offline.

huggingface_hub retries an unreachable host with back-off for most of a minute. Before
asking timm for pretrained weights, this module checks the local caches (Hugging Face hub
cache, torch hub checkpoints); if the file is cached, timm loads it with the hub in offline
mode; if not, the host is probed for a few seconds and a clear error names the model, the
source and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visiontl.contracts import BuildRequest, WeightsReport
from visiontl.errors import WeightsError

_HF_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin", "open_clip_model.safetensors")


def _hf_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for filename in _HF_FILES:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str) and Path(found).is_file():
            return True
    return False


def _url_cached(url: str) -> bool:
    import os

    import torch

    return os.path.isfile(os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url.split("?")[0])))


def _fix(model: str) -> str:
    return (
        "download the weights once on a connected machine (the Hugging Face cache ~/.cache/huggingface "
        f"can be copied), or set model.weights to a local file, or set model.pretrained: false for '{model}'"
    )


def pretrained_model(request: BuildRequest, options: dict[str, Any]) -> tuple[Any, WeightsReport]:
    """Create the model with timm's pretrained weights and a new head."""
    import timm

    from visiontl.weights import hf_offline, require_reachable

    name = request.model_id.name
    model_id = str(request.model_id)
    import torch

    with torch.device("meta"):  # only the config is wanted: no memory, no weights
        probe = timm.create_model(name, pretrained=False, num_classes=request.num_classes, **options)
    cfg = dict(getattr(probe, "pretrained_cfg", {}) or {})
    hf_id = cfg.get("hf_hub_id")
    url = cfg.get("url")
    if not hf_id and not url and not cfg.get("file"):
        raise WeightsError(f"timm publishes no pretrained weights for '{model_id}'.", fix="set model.pretrained: false or model.weights: PATH")
    if cfg.get("file"):
        source = f"file:{cfg['file']}"
        model = timm.create_model(name, pretrained=True, num_classes=request.num_classes, **options)
    elif hf_id and _hf_cached(hf_id):
        source = f"hf-hub:{hf_id} (cache)"
        with hf_offline():
            model = timm.create_model(name, pretrained=True, num_classes=request.num_classes, **options)
    elif url and not hf_id and _url_cached(url):
        source = f"{url} (cache)"
        model = timm.create_model(name, pretrained=True, num_classes=request.num_classes, **options)
    else:
        where = f"https://huggingface.co/{hf_id}" if hf_id else str(url)
        require_reachable(where, model_id, _fix(model_id))
        source = f"hf-hub:{hf_id}" if hf_id else str(url)
        try:
            model = timm.create_model(name, pretrained=True, num_classes=request.num_classes, **options)
        except Exception as exc:  # noqa: BLE001 - any download failure becomes one clear message
            raise WeightsError(f"Downloading pretrained weights for '{model_id}' from {where} failed: {type(exc).__name__}: {exc}", fix=_fix(model_id)) from None
    # timm drops the published classifier when num_classes differs; record that honestly.
    classifier = cfg.get("classifier")
    head_keys = [k for k in model.state_dict() if classifier and (k == classifier or k.startswith(str(classifier) + "."))]
    reinit = head_keys if cfg.get("num_classes") not in (None, request.num_classes) else []
    loaded = len(model.state_dict()) - len(reinit)
    return model, WeightsReport(source=f"pretrained:{source}", loaded=loaded, reinitialised=reinit)
