"""How much to trust a latency estimate (issue 10 item 2). Standard library only: the probe's
child imports it before torch.

The headline is the median decode time per token. Its 95 % confidence interval comes from
order statistics (distribution-free: decode times are skewed, with a long tail when the
machine is busy), and the probe keeps measuring until that interval's half-width is within
`stable_within` of the median or its time budget ends. An estimate that never got there is
marked unstable, as llama-bench prints ± beside its figures.
"""

from __future__ import annotations

import math
import statistics

Z95 = 1.96
# Below this many samples the order-statistic interval is the whole range.
MIN_SAMPLES = 8


def median_ci(values: list[float]) -> tuple[float, float]:
    """A 95 % confidence interval of the median: the order statistics n/2 ∓ 1.96·√n/2."""
    ordered = sorted(values)
    n = len(ordered)
    if n < MIN_SAMPLES:
        return ordered[0], ordered[-1]
    half = Z95 * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half) - 1)
    return ordered[low], ordered[high]


def relative_ci(values: list[float]) -> float:
    """The interval's half-width over the median (inf with no samples)."""
    if not values:
        return math.inf
    low, high = median_ci(values)
    median = statistics.median(values)
    return (high - low) / 2 / median if median > 0 else math.inf


def is_stable(values: list[float], within: float) -> bool:
    return len(values) >= MIN_SAMPLES and relative_ci(values) <= within


def p90(values: list[float]) -> float:
    if len(values) == 1:
        return values[0]
    # Linear interpolation between closest ranks, as numpy's default percentile does.
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def spread(values: list[float], within: float) -> dict:
    """The summary a page shows beside the median: p90, min, count, coefficient of variation,
    the median's relative CI half-width and whether that met the target."""
    mean = statistics.fmean(values)
    cv = statistics.stdev(values) / mean if len(values) > 1 and mean > 0 else 0.0
    rel = relative_ci(values)
    return {
        "decode_ms_p90": p90(values),
        "decode_ms_min": min(values),
        "decode_n": len(values),
        "decode_cv": cv,
        "decode_rel_ci": rel if math.isfinite(rel) else None,
        "stable": is_stable(values, within),
    }
