"""Percentiles without numpy."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def percentiles_ms(seconds: Iterable[float], pcts: Sequence[float]) -> dict[float, float | None]:
    values = sorted(seconds)
    found: dict[float, float | None] = {}
    for p in pcts:
        value = percentile(values, p)
        found[p] = None if value is None else round(value * 1000, 2)
    return found
