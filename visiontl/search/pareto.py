"""Pareto fronts of validation metric against latency (plain arithmetic, no torch)."""

from __future__ import annotations

from collections.abc import Sequence


def front(points: Sequence[tuple[float, float]], higher_is_better: bool = True) -> list[bool]:
    """Which ``(metric, latency)`` points no other point dominates (better or equal in both,
    strictly better in one); lower latency is better.

    Example:
        >>> front([(0.9, 10.0), (0.8, 5.0), (0.7, 8.0)])
        [True, True, False]
    """
    sign = 1.0 if higher_is_better else -1.0
    flags = []
    for i, (m, lat) in enumerate(points):
        dominated = any(
            sign * m2 >= sign * m and l2 <= lat and (sign * m2 > sign * m or l2 < lat)
            for j, (m2, l2) in enumerate(points) if j != i
        )
        flags.append(not dominated)
    return flags
