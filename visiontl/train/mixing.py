"""Mixup and CutMix on a batch, with soft targets."""

from __future__ import annotations

import torch


def _beta(alpha: float, generator: torch.Generator) -> float:
    # Beta(a, a) from two Gamma draws; torch's Beta has no generator argument.
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    import numpy as np

    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mix_batch(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    mixup: float,
    cutmix: float,
    prob: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch with its reversed order; return inputs and class-probability targets.

    When both alphas are set, each batch picks one of the two with equal chance.

    Args:
        inputs: ``(N, C, H, W)`` images.
        targets: ``(N,)`` integer labels.
        num_classes: number of classes.
        mixup, cutmix: Beta alphas (0 disables).
        prob: probability of mixing this batch at all.
        generator: the run's random generator (reproducible, resumable).
    """
    soft = torch.nn.functional.one_hot(targets, num_classes).to(inputs.dtype)
    if torch.rand(1, generator=generator).item() >= prob or inputs.shape[0] < 2:
        return inputs, soft
    use_cutmix = cutmix > 0 and (mixup <= 0 or torch.rand(1, generator=generator).item() < 0.5)
    perm = torch.arange(inputs.shape[0] - 1, -1, -1)
    if use_cutmix:
        lam = _beta(cutmix, generator)
        _, _, h, w = inputs.shape
        cut = (1.0 - lam) ** 0.5
        ch, cw = int(h * cut), int(w * cut)
        cy = int(torch.randint(0, h, (1,), generator=generator).item())
        cx = int(torch.randint(0, w, (1,), generator=generator).item())
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        mixed = inputs.clone()
        mixed[:, :, y0:y1, x0:x1] = inputs[perm][:, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)  # the area actually pasted
    else:
        lam = _beta(mixup, generator)
        mixed = inputs * lam + inputs[perm] * (1.0 - lam)
    return mixed, soft * lam + soft[perm] * (1.0 - lam)
