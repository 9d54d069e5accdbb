"""The tinycnn cards: read from ``catalogue.json`` (plain data, no torch), and the generator
that writes it (``python -m visiontl_example.catalogue``; a test checks it is current).

The pattern of the built-in plugins: figures live in a data file apart from the logic, each
with its provenance. Parameters and the MAC profile are computed by building each model on
the meta device (:func:`visiontl.selection.profile.mac_profile`): the selection engine
predicts each target's latency from the profile. These models have no published weights and
no published accuracy, so the cards carry none: ``visiontl select`` says so in its reasons.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from visiontl.cards import ModelCard

DATA = Path(__file__).resolve().parent / "catalogue.json"


@lru_cache(maxsize=1)
def cards() -> list[ModelCard]:
    """Every tinycnn card (reads JSON only)."""
    return [ModelCard.from_dict(entry) for entry in json.loads(DATA.read_text(encoding="utf-8"))]


def generate() -> list[dict[str, Any]]:
    """Build every variant on the meta device and return the cards as dicts."""
    import torch
    from visiontl.selection.profile import mac_profile

    from visiontl_example import FAMILY, MODEL_TASKS
    from visiontl_example.models import INPUT_SIZE, VARIANTS, create

    entries = []
    for name in VARIANTS:
        with torch.device("meta"):
            params = sum(p.numel() for p in create(name, 1000).parameters())
        profile = mac_profile(lambda n=name: create(n, 1000), INPUT_SIZE)
        stem, stages = VARIANTS[name]
        card = ModelCard(
            id=f"{FAMILY}:{name}",
            tasks=MODEL_TASKS,
            params_m=round(params / 1e6, 4),
            gmacs=round(profile.macs / 1e9, 5),
            input_size=INPUT_SIZE,
            licence="Apache-2.0 (code; no pretrained weights)",
            tags=("tiny", "scratch", "mobile"),
            notes=f"plain CNN, stem {stem}, stages {'-'.join(map(str, stages))}; trains from scratch in seconds on a CPU",
            arch=FAMILY,
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
