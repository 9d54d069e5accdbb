"""Selection fidelity: predicted against measured batch-1 latency on this machine.

1. Calibrate the latency model here on the reference models (``visiontl select --calibrate``).
2. Measure held-out classification candidates (none of them used in the calibration).
3. Compare predictions with measurements: Spearman rank correlation and the median absolute
   relative error; also for MACs alone and for the published-device fit rescaled to this
   machine, so the calibration's contribution is visible.

    python benchmarks/selection_fidelity.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np


def spearman(a: list[float], b: list[float]) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-gmacs", type=float, default=6.0, help="Skip held-out models above this (keeps the run short).")
    args = parser.parse_args()

    import torch

    from visiontl.selection.calibrate import REFERENCE_MODELS, calibrate, measure_cards
    from visiontl.selection.fit import load_fits
    from visiontl_timm.catalogue import cards

    torch.set_num_threads(args.threads)
    catalogue = cards()
    local = calibrate(catalogue, args.threads)
    held_out = [c for c in catalogue if c.id not in REFERENCE_MODELS and c.profile is not None and (c.gmacs or 0) <= args.max_gmacs
                and not c.id.startswith(("timm:fastvit", "timm:mobileone", "timm:efficientvit_m"))]
    measured = measure_cards(held_out, args.threads)
    ids = sorted(measured, key=measured.get)
    truth = [measured[i] for i in ids]
    by_id = {c.id: c for c in held_out}
    predicted = [local.predict(by_id[i].profile) for i in ids]
    # Baselines: MACs alone (rank only), and the i9 fit rescaled by one factor fitted here.
    macs = [by_id[i].profile.macs for i in ids]
    i9 = load_fits()["i9"]
    raw = [i9.predict(by_id[i].profile) for i in ids]
    scale = statistics.median(t / r for t, r in zip(truth, raw, strict=True))
    print(f"threads {torch.get_num_threads()}; calibration: {local.basis}, fit error {local.fit_error:.1%}")
    print(f"{'model':36s} {'measured':>9s} {'predicted':>9s} {'error':>7s}")
    for i, t, p in zip(ids, truth, predicted, strict=True):
        print(f"{i:36s} {t:8.1f}  {p:8.1f}  {100 * (p - t) / t:+6.0f}%")
    errors = [abs(p - t) / t for p, t in zip(predicted, truth, strict=True)]
    print(f"\n{len(ids)} held-out models")
    print(f"calibrated model : Spearman {spearman(predicted, truth):.3f}, median |relative error| {statistics.median(errors):.1%} (targets >= 0.9, <= 30%)")
    print(f"MACs alone       : Spearman {spearman(macs, truth):.3f}")
    scaled_errors = [abs(r * scale - t) / t for r, t in zip(raw, truth, strict=True)]
    print(f"i9 fit x{scale:.2f}    : Spearman {spearman(raw, truth):.3f}, median |relative error| {statistics.median(scaled_errors):.1%} (the scale is fitted on the held-out set itself: an optimistic baseline)")


if __name__ == "__main__":
    main()
