"""Nearest-rank percentiles of per-gateway delays, as the fleet figures report them (p50, p99)."""

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``fraction`` of all at or below it."""
    if not values:
        raise ValueError("the percentile of no values is undefined")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
