"""The Ultralytics catalogue: cards read from ``catalogue.json`` (no torch), and the generator
that writes it (``python -m visiontl_ultralytics.catalogue``; a test checks it is current).

Where each figure comes from:

* parameters and the MAC profile are computed here, by building each model from its
  Ultralytics config (80 COCO classes, the published head) and counting one 640x640 forward.
  They are multiply-accumulates: Ultralytics' "FLOPs(B)" column counts 2 x MACs (YOLOv8n:
  8.7 GFLOPs published = 4.4 GMACs here), so halve theirs before comparing;
* COCO val2017 mAP (box, and mask for -seg) and latencies are copied from Ultralytics'
  published tables (``published.csv`` beside this file, a subset of the project's reference
  figures, with its source column): ``box_map``/``mask_map`` in percent, as torchvision
  publishes them, so the selection engine compares the families on one scale.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from visiontl.cards import Figure, ModelCard

HERE = Path(__file__).resolve().parent
DATA = HERE / "catalogue.json"
PUBLISHED = HERE / "published.csv"

LICENCE = "AGPL-3.0 (Ultralytics code and weights; enterprise licence available)"
DATASET = "COCO val2017"
INPUT = 640

#: Published metric names -> the catalogue's (percent, as in torchvision's metadata).
_METRICS = {"mAP50-95": "box_map", "box_mAP50-95": "box_map", "mask_mAP50-95": "mask_map"}


@lru_cache(maxsize=1)
def cards() -> list[ModelCard]:
    """The catalogue cards (plain JSON: neither torch nor Ultralytics is imported)."""
    if not DATA.is_file():
        return []
    return [ModelCard.from_dict(entry) for entry in json.loads(DATA.read_text(encoding="utf-8"))]


def published_rows() -> dict[str, list[dict[str, str]]]:
    """Rows of ``published.csv`` by model name (``yolov8n``; PyTorch/ONNX variants included)."""
    rows: dict[str, list[dict[str, str]]] = {}
    with PUBLISHED.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rows.setdefault(row["name"].split(" ")[0], []).append(row)
    return rows


def _figures(rows: list[dict[str, str]]) -> tuple[tuple[Figure, ...], tuple[Figure, ...]]:
    metrics: dict[str, Figure] = {}
    latencies: list[Figure] = []
    for row in rows:
        source = row["source"].split(" [")[0]
        name = _METRICS.get(row["metric_name"])
        if name and row["dataset"] == DATASET and name not in metrics:
            metrics[name] = Figure(name, float(row["metric_value"]), f"{DATASET} mAP@[.5:.95] (%)", source)
        if row["latency_ms"]:
            where = "coco128 val" if "coco128" in row["dataset"] else "COCO val images"
            variant = row["name"].split(" ", 1)[1].strip("()") if " " in row["name"] else ""
            device = row["latency_device"] + (f" [{variant}]" if variant and variant not in row["latency_device"] else "")
            latencies.append(Figure("latency_ms", float(row["latency_ms"]), f"{INPUT}px, batch 1, {where}", source, device=device))
    return tuple(metrics.values()), tuple(latencies)


def _tags(name: str) -> tuple[str, ...]:
    scale = name.replace("yolov8", "")[:1]
    tags = ["one-stage", "anchor-free", "cnn", "realtime"]
    if scale in ("n", "s"):
        tags += ["mobile", "edge-friendly"]
    return tuple(tags)


def generate(names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Build every model with published COCO figures (or only ``names``), count it, and return
    the card dicts."""
    import torch

    from visiontl.selection.profile import mac_profile
    from visiontl_ultralytics.build import make_network
    from visiontl_ultralytics.names import SPECS

    torch.manual_seed(0)
    entries = []
    for name, rows in sorted(published_rows().items(), key=lambda kv: (("-seg" in kv[0]), "nsmlx".index(kv[0][6]))):
        if names is not None and name not in names:
            continue
        spec = SPECS[name]
        metrics, latencies = _figures(rows)
        if not metrics:
            continue
        net = make_network(spec, 80)
        params = sum(p.numel() for p in net.parameters()) + sum(b.numel() for n, b in net.named_buffers() if n.endswith("dfl.conv.weight"))
        profile = mac_profile(lambda s=spec: make_network(s, 80), (INPUT, INPUT))
        published_flops = next((float(r["gflops"]) for r in rows if r["gflops"]), None)
        card = ModelCard(
            id=f"ultralytics:{name}",
            tasks=(spec.task,),
            params_m=round(params / 1e6, 3),
            gmacs=round(profile.macs / 1e9, 3),
            input_size=(INPUT, INPUT),
            metrics=metrics,
            latencies=latencies,
            licence=LICENCE,
            weights=(spec.weights_url,) if spec.weights_url else (),
            tags=_tags(name),
            notes=(f"Ultralytics publishes {published_flops:g} GFLOPs (= 2 x MACs); " if published_flops else "")
            + f"{profile.macs / 1e9:.2f} GMACs counted here at {INPUT} px",
            arch=spec.arch,
            profile=profile,
        )
        entries.append(card.as_dict())
    return entries


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``catalogue.json``; ``--check`` only compares."""
    from visiontl.catalogue import write_or_check

    return write_or_check(DATA, generate(), "visiontl_ultralytics.catalogue", argv)


if __name__ == "__main__":
    raise SystemExit(main())
