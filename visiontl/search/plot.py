"""``pareto.png``: the search's validation metric against measured batch-1 latency.

Grey points: every finished trial at its model's PyTorch eager latency on this machine.
Coloured points: the finalists in the deployment format (arrows from their eager latency
show what the export gained). The line joins the front of the finalists; the chosen trial
is ringed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(rows: list[dict[str, Any]], metric: str, deploy_format: str | None, title: str, path: Path, higher_is_better: bool = True) -> Path | None:
    """Draw the chart to ``path``; ``None`` when nothing was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.get("torch_ms") is not None and r.get("value") is not None]
    if not measured:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    ax.scatter([r["torch_ms"] for r in measured], [r["value"] for r in measured], s=28, facecolors="none", edgecolors="0.55",
               label="trials (PyTorch eager, this machine)")
    finalists = [r for r in measured if r.get("finalist") and r.get("deploy_ms") is not None]
    if finalists:
        ax.scatter([r["deploy_ms"] for r in finalists], [r["value"] for r in finalists], s=60, color="tab:blue", zorder=3,
                   label=f"finalists ({deploy_format or 'torch'})")
        for r in finalists:
            if r["deploy_ms"] != r["torch_ms"]:
                ax.annotate("", xy=(r["deploy_ms"], r["value"]), xytext=(r["torch_ms"], r["value"]),
                            arrowprops={"arrowstyle": "->", "color": "tab:blue", "alpha": 0.5})
            ax.annotate(f"t{r['trial']} {r['label']}", (r["deploy_ms"], r["value"]), textcoords="offset points", xytext=(5, 5), fontsize=7)
        front = sorted((r for r in finalists if r.get("pareto")), key=lambda r: r["deploy_ms"])
        if len(front) > 1:
            ax.plot([r["deploy_ms"] for r in front], [r["value"] for r in front], color="tab:blue", alpha=0.6, label="Pareto front")
        chosen = [r for r in finalists if r.get("chosen")]
        if chosen:
            ax.scatter([chosen[0]["deploy_ms"]], [chosen[0]["value"]], s=220, facecolors="none", edgecolors="tab:red", linewidths=2,
                       zorder=4, label=f"chosen: trial {chosen[0]['trial']}")
    xs = [r["torch_ms"] for r in measured] + [r["deploy_ms"] for r in finalists]
    if max(xs) / max(min(xs), 1e-9) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency on this machine (ms, lower is better)")
    ax.set_ylabel(f"validation {metric} ({'higher' if higher_is_better else 'lower'} is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
