"""Export verification and benchmark verdicts follow the metric's direction: for an error
metric (MAE) a worse export is one whose value rose; a better export always passes."""

from __future__ import annotations

import torch

from visiontl.benchmark.report import _verified, table
from visiontl.export.pipeline import _problems, _rule
from visiontl.export.verify import Comparison, _compare_tensors, _Tally


def comparison(reference: float, exported: float, metric: str = "mae") -> Comparison:
    return Comparison(primary_metric=metric, reference={metric: reference}, exported={metric: exported})


def test_error_metric_fails_when_it_rises_beyond_the_tolerance_and_passes_otherwise():
    assert _problems(comparison(0.6475, 0.6489), 0.0, "int8", higher_is_better=False)  # worse by 0.14 points
    assert _problems(comparison(0.6475, 0.6400), 0.0, "int8", higher_is_better=False) == []  # better: passes
    assert _problems(comparison(0.6475, 0.6489), 0.01, "int8", higher_is_better=False) == []  # within 1 point
    problem = _problems(comparison(0.60, 0.62), 0.01, "int8", higher_is_better=False)[0]
    assert "rose 2.00 points" in problem and "lower is better" in problem
    assert "may rise" in _rule("int8", 0.01, comparison(0.6, 0.6), higher_is_better=False)


def test_accuracy_keeps_its_direction():
    assert _problems(comparison(0.90, 0.88, "accuracy"), 0.01, "int8")
    assert _problems(comparison(0.90, 0.95, "accuracy"), 0.01, "int8") == []


def test_one_output_models_compare_values_not_top1():
    tally = _Tally()
    ref = torch.tensor([[1.0], [2.0], [3.0]])
    _compare_tensors(tally, ref, ref + torch.tensor([[0.0], [0.5], [0.0]]), ["a", "b", "c"], per_image_dim=1)
    assert tally.unit.startswith("values") and (tally.agree, tally.total) == (2, 3) and tally.disagreements == ["b"]


def test_benchmark_verdicts_and_columns_are_named_after_the_metric():
    base = {"accuracy": 0.60, "metric": "mae", "higher_is_better": False}
    assert _verified({"accuracy": 0.605, "metric": "mae", "higher_is_better": False}, base) is True
    assert _verified({"accuracy": 0.62, "metric": "mae", "higher_is_better": False}, base) is False
    assert _verified({"accuracy": 0.55, "metric": "mae", "higher_is_better": False}, base) is True
    header = table([{"name": "m", "format": "torch", "metric": "mae", "accuracy": 0.6}]).splitlines()[0]
    assert "mae" in header and "accuracy" not in header
