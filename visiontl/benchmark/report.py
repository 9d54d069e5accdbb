"""Benchmark output: verdicts (which format is fastest, honestly), a table, JSON and CSV.

The verdicts compare formats at the same batch size, threads and device. "Fastest" is the
lowest median latency; when accuracy was scored (``--data``), the fastest format whose
accuracy is within :data:`ACCURACY_TOLERANCE` of PyTorch fp32 is named as well, and every
int8 format is compared with the float format it was quantised from, slower or not.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from typing import Any

#: Accuracy loss (on a 0-1 metric) a format may show and still count as verified: 1 point.
ACCURACY_TOLERANCE = 0.01

#: int8 format -> the float format it is quantised from.
INT8_BASES = {"onnx-int8": "onnx", "openvino-int8": "openvino"}

#: Columns of the table and the CSV, in order: (row key, table header).
COLUMNS = (
    ("name", "model"), ("format", "format"), ("precision", "prec"), ("batch", "batch"),
    ("latency_ms_p50", "p50 ms"), ("latency_ms_p90", "p90 ms"), ("throughput_ips", "img/s"),
    ("speedup_vs_torch_fp32", "vs torch"), ("params", "params M"), ("macs", "GMACs"),
    ("file_size_mb", "size MB"), ("peak_memory_mb", "peak MB"), ("accuracy", "accuracy"),
)
#: Extra CSV columns (conditions recorded with every row).
CSV_EXTRA = ("target", "model_id", "task", "weights", "exporter", "input_size", "metric", "accuracy_images", "threads", "device",
             "cpu", "repeats", "stable", "latency_ms_mean", "peak_memory_kind", "runtime", "versions", "notes",
             "cam_energy_in_mask", "cam_chance", "cam_pointing_game", "cam_images", "cam_method")


def _key(row: dict[str, Any]) -> tuple[str, int]:
    return str(row["target"]), int(row["batch"])


def _label(row: dict[str, Any]) -> str:
    return f"{row['format']} {row['precision']}"


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Sentences on the fastest format per target and batch; marks rows in place
    (``speedup_vs_torch_fp32``, ``fastest``, ``verified``)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(_key(row), []).append(row)
    out: list[str] = []
    for (target, batch), group in groups.items():
        ranked = sorted(group, key=lambda r: r["latency_ms_p50"])
        base = next((r for r in group if r["format"] == "torch" and r["precision"] == "fp32"), None)
        for row in group:
            row["speedup_vs_torch_fp32"] = base["latency_ms_p50"] / row["latency_ms_p50"] if base else None
            row["fastest"] = row is ranked[0]
            row["verified"] = _verified(row, base)
        best = ranked[0]
        text = f"{target}, batch {batch}: fastest is {_label(best)} at {best['latency_ms_p50']:.2f} ms p50"
        if base is not None and best is not base:
            text += f", {best['speedup_vs_torch_fp32']:.1f}x PyTorch eager fp32 ({base['latency_ms_p50']:.2f} ms)"
        elif base is not None:
            text += " (PyTorch eager fp32 itself)"
        if best.get("accuracy") is not None and base is not None and base.get("accuracy") is not None:
            if best["verified"]:
                text += f"; its {best['metric']} {best['accuracy']:.4f} is within {ACCURACY_TOLERANCE * 100:.0f} point of fp32 ({base['accuracy']:.4f})"
            else:
                side = "above" if best.get("higher_is_better", True) is False else "below"
                text += f"; but its {best['metric']} {best['accuracy']:.4f} is more than {ACCURACY_TOLERANCE * 100:.0f} point worse than fp32 ({base['accuracy']:.4f}, {side})"
                good = next((r for r in ranked if r["verified"]), None)
                if good is not None:
                    text += f"; the fastest within tolerance is {_label(good)} at {good['latency_ms_p50']:.2f} ms"
        out.append(text + ".")
        for row in group:
            base_name = INT8_BASES.get(row["format"])
            if base_name is None:
                continue
            for ref in (r for r in group if r["format"] == base_name):
                ratio = ref["latency_ms_p50"] / row["latency_ms_p50"]
                if ratio < 1.0:
                    out.append(f"{target}, batch {batch}: {_label(row)} is SLOWER than {_label(ref)} here "
                               f"({row['latency_ms_p50']:.2f} vs {ref['latency_ms_p50']:.2f} ms): int8 is not always faster.")
                else:
                    out.append(f"{target}, batch {batch}: {_label(row)} is {ratio:.2f}x {_label(ref)} "
                               f"({row['latency_ms_p50']:.2f} vs {ref['latency_ms_p50']:.2f} ms).")
    return out


def _verified(row: dict[str, Any], base: dict[str, Any] | None) -> bool | None:
    """Whether a row's metric is within the tolerance of fp32, in the metric's direction
    (``higher_is_better`` in the row: an error such as MAE may rise at most the tolerance)."""
    if row.get("accuracy") is None or base is None or base.get("accuracy") is None:
        return None
    if row.get("higher_is_better", True) is False:
        return bool(row["accuracy"] <= base["accuracy"] + ACCURACY_TOLERANCE + 1e-12)
    return bool(row["accuracy"] >= base["accuracy"] - ACCURACY_TOLERANCE - 1e-12)


def _cell(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "params":
        return f"{value / 1e6:.2f}"
    if key == "macs":
        return f"{value / 1e9:.3f}"
    if key == "speedup_vs_torch_fp32":
        return f"{value:.2f}x"
    if key == "accuracy":
        return f"{value:.4f}"
    if key in ("latency_ms_p50", "latency_ms_p90"):
        return f"{value:.3f}" if value < 10 else f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def table(rows: Iterable[dict[str, Any]]) -> str:
    """An aligned text table of the rows (fastest row of each target/batch marked ``*``)."""
    from visiontl.cli.options import table as text_table

    rows = list(rows)
    body = []
    for row in rows:
        cells = [_cell(key, row.get(key)) for key, _ in COLUMNS]
        if row.get("fastest"):
            cells[1] = "*" + cells[1]
        body.append(cells)
    # The scored column is named after the metric it holds (accuracy, map50, miou, mae ...).
    metrics = {row["metric"] for row in rows if row.get("metric")}
    scored = metrics.pop() if len(metrics) == 1 else "metric"
    return text_table(body, [scored if key == "accuracy" else header for key, header in COLUMNS])


def render(result: Any) -> str:
    """Table, conditions, skipped formats and verdicts, for the terminal."""
    c = result.conditions
    lines = [table(result.rows)] if result.rows else ["nothing was measured"]
    peak = result.rows[0].get("peak_memory_kind") if result.rows else None
    lines += ["", f"threads {c['threads']}, device {c['device']} ({c['cpu']}), torch {c['versions'].get('torch')}; "
              f"p50/p90 of per-call latency after {c['warmup']} warm-up calls; * = fastest per model and batch; "
              f"MACs per image; peak memory = {peak or '-'}"]
    scored = {row["target"]: row for row in result.rows if row.get("cam_energy_in_mask") is not None}
    if scored:
        lines += ["", "CAM energy inside the object masks (chance = the masks' share of the image):"]
        lines += [f"  {row['name']}: {row['cam_energy_in_mask']:.3f} (chance {row['cam_chance']:.3f}, peak inside the mask "
                  f"{row['cam_pointing_game']:.0%}, {row['cam_images']} images, {row['cam_method']})" for row in scored.values()]
    if result.skipped:
        lines += ["", "not measured:"] + [f"  {s['target']}: {s['what']}: {s['reason']}" for s in result.skipped]
    if result.verdicts:
        lines += ["", *result.verdicts]
    return "\n".join(lines)


def to_json(result: Any) -> str:
    return json.dumps(result.as_dict(), indent=2, default=str)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """One line per row: the table's columns (raw values) and the recorded conditions."""
    columns = [key for key, _ in COLUMNS] + ["fastest", "verified", *CSV_EXTRA]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = {}
        for key in columns:
            value = row.get(key)
            flat[key] = json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else value
        writer.writerow(flat)
    return buf.getvalue()
