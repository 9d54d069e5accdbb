"""The Pareto chart: accuracy against latency, marker area proportional to parameters.

Each point is one (model, format, precision) at the smallest batch measured. Accuracy is the
one measured on ``--data``; where nothing was measured, a model's published figure from its
catalogue card is drawn instead, hollow and labelled as such (random-weights models have no
accuracy of their own). The line joins the Pareto front: no point left of it is more accurate.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from visiontl.errors import ConfigError


def _points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        return []
    batch = min(int(r["batch"]) for r in rows)
    points = []
    for row in rows:
        if int(row["batch"]) != batch:
            continue
        if row.get("accuracy") is not None and not math.isnan(row["accuracy"]):
            points.append({**row, "y": row["accuracy"], "measured": True})
        elif row.get("published_value") is not None:
            points.append({**row, "y": row["published_value"], "measured": False})
    return points


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both latency (lower) and accuracy (higher), by latency."""
    front: list[tuple[float, float]] = []
    best = -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def plot_pareto(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Write the chart to ``path`` (PNG).

    Raises:
        ConfigError: no row has a measured or published accuracy to plot.
    """
    points = _points(rows)
    if not points:
        raise ConfigError(
            "The Pareto chart needs accuracy, and no row has any (nothing scored, no published figure).",
            fix="pass --data DATASET to score the models, or benchmark catalogue models that carry published figures",
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    largest = max(p["params"] or 1 for p in points)
    formats = sorted({p["format"] for p in points})
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(formats)}
    one_model = len({p["model_id"] for p in points}) == 1
    for i, p in enumerate(points):
        size = 40 + 900 * math.sqrt((p["params"] or 1) / largest)
        colour = colours[p["format"]]
        ax.scatter(p["latency_ms_p50"], p["y"], s=size, facecolors=colour if p["measured"] else "none", edgecolors=colour,
                   alpha=0.75, linewidths=1.5)
        name = "" if one_model else str(p["model_id"]).split(":", 1)[-1] + "\n"
        # alternate the label above and below the point: neighbouring formats often overlap
        ax.annotate(f"{name}{p['format']} {p['precision']}", (p["latency_ms_p50"], p["y"]), fontsize=7,
                    xytext=(6, 6 if i % 2 == 0 else -12), textcoords="offset points")
    front = pareto_front([(p["latency_ms_p50"], p["y"]) for p in points])
    if len(front) > 1:
        ax.step([x for x, _ in front], [y for _, y in front], where="post", color="grey", linestyle="--", linewidth=1,
                label="Pareto front")
    for f in formats:
        ax.scatter([], [], color=colours[f], label=f)
    if any(not p["measured"] for p in points):
        ax.scatter([], [], facecolors="none", edgecolors="black", label="published figure (card), not measured here")
    ax.set_xscale("log")
    from matplotlib.ticker import ScalarFormatter

    for axis in (ax.xaxis,):  # plain numbers (2, 5, 20 ms), not 2x10^0
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel(f"median latency, ms (batch {min(int(p['batch']) for p in points)}, log scale)")
    metrics = sorted({str(p.get("metric") or p.get("published_metric") or "accuracy") for p in points})
    ax.set_ylabel(" / ".join(metrics))
    r = points[0]
    subject = f"{str(r['model_id']).split(':', 1)[-1]}: " if one_model else ""
    ax.set_title(title or f"{subject}accuracy vs latency: {r.get('device')}, {r.get('threads')} threads; marker area ~ parameters", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
