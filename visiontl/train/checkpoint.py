"""Checkpoints: written atomically, readable without trusting pickled code, hashed.

Every checkpoint carries ``content_sha256``: a SHA-256 of its content (every tensor's name,
dtype, shape and bytes, and every plain value), computed before writing and checked on
reading, so bit rot inside a tensor is an error instead of a quietly wrong model. Checkpoints
written before the hash existed still load, unverified.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from visiontl.errors import RunError
from visiontl.runs.layout import atomic_write_bytes

FORMAT = "visiontl-checkpoint"
VERSION = 1
#: The key of the content hash in a checkpoint (absent in checkpoints older than it).
HASH_KEY = "content_sha256"


def content_hash(payload: Mapping[str, Any]) -> str:
    """The SHA-256 of a checkpoint's content (its ``content_sha256`` key left out).

    Dict keys are taken in sorted order and tensors by dtype, shape and raw bytes, so the
    hash depends on what was saved, not on how ``torch.save`` laid it out.
    """
    h = hashlib.sha256()
    for chunk in _canonical({k: v for k, v in payload.items() if k != HASH_KEY}):
        h.update(chunk)
    return h.hexdigest()


def _canonical(obj: Any) -> Iterator[bytes | memoryview]:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        yield f"T{t.dtype}{tuple(t.shape)}:".encode()
        try:
            yield t.contiguous().reshape(-1).view(torch.uint8).numpy().data
        except (RuntimeError, TypeError):  # sparse, quantized ...: hash the values instead
            yield repr(t.tolist()).encode()
    elif isinstance(obj, Mapping):
        yield f"D{len(obj)}{{".encode()
        for key in sorted(obj, key=repr):
            yield f"{key!r}:".encode()
            yield from _canonical(obj[key])
        yield b"}"
    elif isinstance(obj, (list, tuple)):
        yield f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}[".encode()
        for item in obj:
            yield from _canonical(item)
        yield b"]"
    else:
        yield f"{type(obj).__name__}:{obj!r};".encode()


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Serialise to memory, then write-and-rename: a crash never leaves half a file.

    The content hash is (re)computed here: a payload read from an older checkpoint and
    changed is hashed as it is now.
    """
    body = {"format": FORMAT, "version": VERSION, **{k: v for k, v in payload.items() if k != HASH_KEY}}
    body[HASH_KEY] = content_hash(body)
    buf = io.BytesIO()
    torch.save(body, buf)
    atomic_write_bytes(path, buf.getvalue())


def snapshot(obj: Any) -> Any:
    """A copy of ``obj`` whose tensors are cloned: training can go on changing its weights and
    optimizer state in place while the copy is written."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, Mapping):
        return type(obj)((k, snapshot(v)) for k, v in obj.items()) if isinstance(obj, dict) else {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [snapshot(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(snapshot(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes an epoch's checkpoints on a background thread while the next epoch trains.

    Hashing, serialising and writing a large model (tens of MB, several times over with an
    optimizer's state) costs a noticeable share of a short epoch; the loop only pays for a
    snapshot (tensor copies in memory). One write is in flight at a time: handing over the
    next one, or :meth:`wait`, first finishes the previous one and re-raises its error. Each
    file is still written atomically, so a kill at any moment leaves the previous complete
    ``last.pt``, and resuming from it replays the same epochs.

    Args:
        background: write on a thread (``False``: write at once, in the caller's thread).
    """

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._thread: Any = None
        self._error: BaseException | None = None

    def submit(self, items: list[tuple[Path, dict[str, Any]]]) -> None:
        """Write each ``(path, payload)`` in order (after the previous submission is done)."""
        self.wait()
        if not self.background:
            for path, payload in items:
                save_checkpoint(path, payload)
            return
        import threading

        copies = [(path, snapshot(payload)) for path, payload in items]
        self._thread = threading.Thread(target=self._write, args=(copies,), name="visiontl-checkpoint", daemon=True)
        self._thread.start()

    def _write(self, items: list[tuple[Path, dict[str, Any]]]) -> None:
        try:
            for path, payload in items:
                save_checkpoint(path, payload)
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        """Finish the write in flight; raise its error, if it had one."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RunError(f"Writing a checkpoint failed: {type(error).__name__}: {error}",
                           fix="check the free space and permissions of the run directory") from error


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a visiontl checkpoint (tensors and plain data only: ``weights_only=True``).

    Raises:
        RunError: the file is missing, unreadable, not a visiontl checkpoint, or corrupt (its
            content no longer matches the hash stored when it was written).
    """
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
    stored = obj.get(HASH_KEY)
    if stored is not None and content_hash(obj) != stored:
        raise RunError(
            f"Checkpoint '{path}' is corrupt: its content no longer matches the SHA-256 stored when it was written "
            "(the file changed on disk: bit rot, a partial copy or an edit).",
            fix="restore the file from a copy, use the run's other checkpoint (checkpoints/last.pt or best.pt), or train again",
        )
    return obj


def is_verified(ckpt: Mapping[str, Any]) -> bool:
    """Whether a loaded checkpoint carried a content hash (and so was checked on loading)."""
    return ckpt.get(HASH_KEY) is not None


def non_finite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict holding NaN or Inf."""
    bad = []
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            if not bool(torch.isfinite(value).all()):
                bad.append(name)
    return bad


def non_finite_scalars(metrics: Mapping[str, Any]) -> list[str]:
    """Names of the float metrics that are NaN or infinite."""
    return [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]


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
    """What ``predict``, ``eval`` and ``resume`` need to rebuild a model from a checkpoint,
    and where its training data came from (``data_provenance``, for ``eval``'s check)."""
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
        "data_provenance": dict(getattr(job.data_info, "provenance", None) or {}),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
