"""``--measure``: time the shortlisted candidates on this machine and re-rank."""

from __future__ import annotations

import math

from visiontl.selection.engine import PRIORITY_WEIGHTS, Candidate, Rejected, Selection, reasons_line


def measure(selection: Selection, threads: int | None = None, min_seconds: float = 1.0) -> Selection:
    """Benchmark every candidate of ``selection`` at batch 1 through the benchmark hook.

    Measured latencies replace predictions in the score. On the ``local`` target they are
    also checked against the budget; on other targets they are this machine's, not the
    target's, and the notes say so.
    """
    import torch

    from visiontl.selection.calibrate import measure_cards

    cards = [c.card for c in selection.candidates if c.card is not None]
    measured = measure_cards(cards, threads, min_seconds)
    used = threads or torch.get_num_threads()
    weight = PRIORITY_WEIGHTS[selection.constraints["priority"]]
    kept: list[Candidate] = []
    for c in selection.candidates:
        c.measured_ms = measured.get(c.id)
        if c.measured_ms is None:
            kept.append(c)
            continue
        if selection.target.name == "local" and c.measured_ms > selection.budget_ms:
            selection.rejected.insert(0, Rejected(c.id, f"measured {c.measured_ms:.0f} ms > {selection.budget_ms:.0f} ms budget", c.measured_ms / selection.budget_ms - 1))
            continue
        c.score = c.ranked_value - weight * math.log2(c.measured_ms / selection.budget_ms)
        kept.append(c)
    kept.sort(key=lambda c: -c.score)
    for c in kept:
        c.reasons = reasons_line(c, selection.budget_ms, selection.task)
    selection.candidates = kept
    where = "the target" if selection.target.name == "local" else "this machine (not the target)"
    selection.notes.append(f"latencies measured on {where}: batch 1, {used} threads, random weights, median of >= 10 runs")
    return selection
