"""Checkpoints: written atomically, readable without trusting pickled code."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from visiontl.errors import RunError
from visiontl.runs.layout import atomic_write_bytes

FORMAT = "visiontl-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Serialise to memory, then write-and-rename: a crash never leaves half a file."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a visiontl checkpoint (tensors and plain data only: ``weights_only=True``)."""
    if not path.is_file():
        raise RunError(f"Checkpoint '{path}' does not exist.", fix="pass a run directory or a .pt file written by visiontl")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise RunError(f"Cannot read checkpoint '{path}': {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise RunError(
            f"'{path}' is not a visiontl checkpoint.",
            fix="to start from foreign weights use model.weights in a recipe instead",
        )
    return obj


def checkpoint_for(target: Path, prefer: str = "best") -> Path:
    """The checkpoint file for a run directory or a checkpoint path."""
    if target.is_dir():
        for name in (prefer, "last" if prefer == "best" else "best"):
            candidate = target / "checkpoints" / f"{name}.pt"
            if candidate.is_file():
                return candidate
        raise RunError(f"Run '{target}' has no checkpoints.", fix="was it run with output.checkpoints: false?")
    return target


def model_payload(job: Any, model: torch.nn.Module) -> dict[str, Any]:
    """What ``predict``, ``eval`` and ``resume`` need to rebuild a model from a checkpoint."""
    from dataclasses import asdict

    from visiontl.config.loader import recipe_to_dict

    built = job.built
    return {
        "model_id": str(built.model_id),
        "task": built.task,
        "class_names": list(job.data_info.class_names),
        "preprocessing": asdict(built.preprocessing),
        "recipe": recipe_to_dict(job.recipe),
        "weights": built.weights.as_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
