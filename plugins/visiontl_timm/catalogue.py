"""The timm catalogue: cards read from ``catalogue.json`` (no torch), and the generator
that writes it.

Every figure has its provenance: parameters and the MAC profile are computed here, by
building each model on the meta device (``python -m visiontl_timm.catalogue`` rewrites the
file; a test checks that it is current); ImageNet top-1 and the CPU batch-1 latency are
copied from timm's published results (``published.csv`` beside this file, a subset of timm's
results CSVs with their source column).
"""

from __future__ import annotations

import csv
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from visiontl.cards import Figure, ModelCard

HERE = Path(__file__).resolve().parent
DATA = HERE / "catalogue.json"
PUBLISHED = HERE / "published.csv"

# Families whose published CPU timings were taken on un-reparameterised models (timm's own
# warning in its CSVs): their latency figures are left out.
UNTRUSTED_CPU_LATENCY = ("mobileone", "fastvit", "efficientvit_m")

MOBILE_ARCHS = ("mobilenet", "lcnet", "ghostnet", "mobilevit", "efficientvit", "fastvit", "mobileone")


@lru_cache(maxsize=1)
def cards() -> list[ModelCard]:
    """The catalogue cards (plain JSON: importing torch or timm is not needed)."""
    if not DATA.is_file():
        return []
    return [ModelCard.from_dict(entry) for entry in json.loads(DATA.read_text(encoding="utf-8"))]


def _arch(name: str) -> str:
    for prefix in ("mobilenetv2", "mobilenetv3", "mobilenetv4", "efficientnetv2", "tf_efficientnetv2", "efficientnet", "efficientvit",
                   "convnext", "resnet", "regnety", "densenet", "vit", "swin", "lcnet", "ghostnet", "mobilevitv2", "mobilevit", "fastvit", "mobileone"):
        if name.startswith(prefix):
            return prefix.replace("tf_", "")
    return name.split("_")[0]


def _tags(arch: str, params_m: float) -> tuple[str, ...]:
    tags = []
    if any(arch.startswith(a) for a in MOBILE_ARCHS) or (arch in ("efficientnet", "regnety") and params_m <= 10):
        tags.append("mobile")
    if arch in ("vit", "swin", "mobilevit", "mobilevitv2", "efficientvit"):
        tags.append("transformer" if arch in ("vit", "swin") else "hybrid")
    if not tags or "mobile" not in tags:
        tags.append("server")
    return tuple(tags)


def _published_rows() -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {}
    with PUBLISHED.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if "(default tag)" not in row["name"] or row["metric_name"] != "top1":
                continue
            arch = row["name"].split(".")[0]
            rows.setdefault(arch, []).append(row)
    return rows


def generate() -> list[dict[str, Any]]:
    """Build every model with a published default-tag row on the meta device and write the cards."""
    import timm

    from visiontl.selection.profile import mac_profile

    entries = []
    for name, rows in sorted(_published_rows().items()):
        if not timm.is_model(name):
            continue
        cfg = timm.models.get_pretrained_cfg(name)
        size = int(cfg.input_size[-1]) if cfg is not None else 224
        row = next((r for r in rows if r["input_size"] == str(size)), rows[-1])
        size = int(row["input_size"])
        import torch

        with torch.device("meta"):
            params = sum(p.numel() for p in timm.create_model(name).parameters()) / 1e6
        profile = mac_profile(lambda n=name: timm.create_model(n), (size, size))
        tag = row["name"].split(" ")[0]
        source = row["source"].split(" ; ")[0]
        metrics = [Figure("top1", float(row["metric_value"]), f"ImageNet-1k val: {row['dataset']}", source)]
        latencies = []
        if row["latency_ms"] and not name.startswith(UNTRUSTED_CPU_LATENCY):
            lat_source = row["source"].split(" ; ")[-1]
            latencies.append(Figure("latency_ms", float(row["latency_ms"]), f"{size}px, batch 1", lat_source, device=row["latency_device"].split(" [")[0]))
        arch = _arch(name)
        card = ModelCard(
            id=f"timm:{name}",
            tasks=("classification",),
            params_m=round(params, 3),
            gmacs=round(profile.macs / 1e9, 4),
            input_size=(size, size),
            metrics=tuple(metrics),
            latencies=tuple(latencies),
            licence=str(getattr(cfg, "license", "") or ""),
            weights=(f"hf-hub:timm/{tag}",),
            tags=_tags(arch, params),
            notes=f"pretrained tag {tag}",
            arch=arch,
            profile=profile,
        )
        entries.append(card.as_dict())
    return entries


def main() -> None:
    entries = generate()
    DATA.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(entries)} cards to {DATA}", file=sys.stderr)


if __name__ == "__main__":
    main()
