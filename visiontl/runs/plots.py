"""Figures for the run directory (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict[str, Any]], primary: str, out: Path) -> Path:
    """Training loss, validation loss and the primary metric per epoch, phases shaded."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [row.get("train_loss") for row in history], marker="o", label="train loss")
    if any(row.get("val_loss") is not None for row in history):
        ax_loss.plot(epochs, [row.get("val_loss") for row in history], marker="o", label="val loss")
    ax_metric.plot(epochs, [row.get(primary) for row in history], marker="o", color="tab:green", label=f"val {primary}")
    # Shade phases so unfreezing boundaries are visible.
    phases: list[tuple[str, int, int]] = []
    for row in history:
        if not phases or phases[-1][0] != row["phase"]:
            phases.append((row["phase"], row["epoch"], row["epoch"]))
        else:
            phases[-1] = (phases[-1][0], phases[-1][1], row["epoch"])
    for i, (name, start, end) in enumerate(phases):
        for ax in (ax_loss, ax_metric):
            ax.axvspan(start - 0.5, end + 0.5, color="0.92" if i % 2 else "0.97", zorder=0)
        ax_metric.text((start + end) / 2, 1.0, name, transform=ax_metric.get_xaxis_transform(), ha="center", va="bottom", fontsize=8)
    for ax, title in ((ax_loss, "loss"), (ax_metric, primary)):
        ax.set_xlabel("epoch")
        ax.set_title(title, pad=14)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_confusion_matrix(cm: Sequence[Sequence[int]], names: Sequence[str], out: Path) -> Path:
    """Confusion matrix (rows: true class, columns: predicted), counts annotated."""
    import numpy as np

    plt = _pyplot()
    arr = np.asarray(cm)
    n = len(names)
    size = max(3.5, min(12.0, 0.6 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(arr, cmap="Blues")
    ax.set_xticks(range(n), labels=list(names), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=list(names), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        top = arr.max() if arr.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(arr[i, j]), ha="center", va="center", fontsize=7, color="white" if arr[i, j] > top / 2 else "black")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
