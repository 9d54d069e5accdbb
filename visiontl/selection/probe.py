"""``--probe DATA``: rank backbones by a fast linear probe on the user's own images.

Each candidate's frozen features (its features/head split, globally pooled) are computed on
a small stratified sample of the data; a logistic-regression probe is fitted on the train
sample and scored on the validation sample. Good features for *your* images beat a better
ImageNet score that does not transfer; the probe tells which, in seconds per model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visiontl.errors import DataError, VisiontlError


@dataclass
class ProbeSpec:
    """A model to probe: an id, and local weights (or published weights) if any."""

    model_id: str
    weights: Path | None = None
    pretrained: bool = False

    @property
    def label(self) -> str:
        if self.weights is not None:
            return f"{self.model_id} (weights {self.weights.name})"
        return f"{self.model_id} ({'pretrained' if self.pretrained else 'random weights'})"


@dataclass
class ProbeResult:
    spec: ProbeSpec
    accuracy: float | None
    seconds: float
    error: str | None = None


def _samples(data: Path, per_class: int, seed: int) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    from visiontl.data.classification import limit_per_class, scan_imagefolder, stratified_split

    train_dir = data / "train" if (data / "train").is_dir() else data
    names, train = scan_imagefolder(train_dir)
    if (data / "val").is_dir():
        _, val = scan_imagefolder(data / "val", names)
        tr, va = train.samples, val.samples
    else:
        tr, va = stratified_split(train.samples, 0.3, seed)
    import random

    rng = random.Random(seed)
    tr, va = list(tr), list(va)
    rng.shuffle(tr)
    rng.shuffle(va)
    tr = limit_per_class(tr, per_class)
    va = limit_per_class(va, per_class)
    if len(names) < 2 or not tr or not va:
        raise DataError(f"--probe needs an ImageFolder dataset with at least 2 classes; found {names} in {data}.")
    return names, [(s.path, s.label) for s in tr], [(s.path, s.label) for s in va]


def _features(built: Any, items: list[tuple[Path, int]], size: int | None) -> Any:
    import torch

    from visiontl.data.images import UnreadableImage, load_rgb
    from visiontl.data.transforms import eval_transform

    split = built.split
    if split is None:
        raise VisiontlError(f"{built.model_id} has no features/head split to probe")
    transform = eval_transform(built.preprocessing.with_size(size))
    model = built.model.eval()
    rows = []
    with torch.inference_mode():
        batch: list[Any] = []
        for path, _ in items:
            try:
                batch.append(transform(load_rgb(path)))
            except UnreadableImage:
                batch.append(None)
        good = [b for b in batch if b is not None]
        for start in range(0, len(good), 32):
            feats = split.features(torch.stack(good[start:start + 32]))
            if feats.ndim == 4:
                feats = feats.mean(dim=(2, 3))
            elif feats.ndim == 3:  # tokens: average them
                feats = feats.mean(dim=1)
            rows.append(feats.float())
    del model
    return torch.cat(rows), [lab for (_, lab), b in zip(items, batch, strict=True) if b is not None]


def _linear_probe(xtr: Any, ytr: list[int], xva: Any, yva: list[int], classes: int) -> float:
    import torch

    mean, std = xtr.mean(0, keepdim=True), xtr.std(0, keepdim=True) + 1e-6
    xtr, xva = (xtr - mean) / std, (xva - mean) / std
    ytr_t, yva_t = torch.tensor(ytr), torch.tensor(yva)
    torch.manual_seed(0)
    linear = torch.nn.Linear(xtr.shape[1], classes)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(xtr), ytr_t) + 1e-3 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((linear(xva).argmax(1) == yva_t).float().mean())


def probe(specs: list[ProbeSpec], data: Path, *, per_class: int = 40, size: int | None = None, seed: int = 0, data_root: Path | None = None) -> list[ProbeResult]:
    """Probe every spec on ``data``; results sorted best first (failures last, with why)."""
    import torch

    from visiontl.contracts import BuildRequest
    from visiontl.ids import parse_model_id
    from visiontl.plugin_manager import get_plugins
    from visiontl.weights import resolve_weights_path

    names, train, val = _samples(data, per_class, seed)
    plugins = get_plugins()
    results = []
    for spec in specs:
        started = time.perf_counter()
        try:
            model_id = parse_model_id(spec.model_id)
            plugins.require_family(model_id.family)
            weights = resolve_weights_path(spec.weights, data_root) if spec.weights else None
            torch.manual_seed(seed)
            built = plugins.hook.visiontl_build(request=BuildRequest(model_id, "classification", len(names), pretrained=spec.pretrained, weights=weights, class_names=tuple(names)))
            xtr, ytr = _features(built, train, size)
            xva, yva = _features(built, val, size)
            accuracy = _linear_probe(xtr, ytr, xva, yva, len(names))
            results.append(ProbeResult(spec, accuracy, time.perf_counter() - started))
        except VisiontlError as exc:
            results.append(ProbeResult(spec, None, time.perf_counter() - started, str(exc)))
    results.sort(key=lambda r: -(r.accuracy if r.accuracy is not None else -1.0))
    return results
