"""How far a measured latency can be trusted, from the raw decode samples the probe stored.

A median alone hides noise: the same tiny model has been measured at 2.3, 0.45 and 14.1
ms/token. Like llama-bench's ± stddev, every measured figure is shown with its spread, and
one whose samples disagree too much is flagged as unstable.
"""

from __future__ import annotations

import math
import statistics

# A coefficient of variation above this, or a p90 this far above the median, means the
# machine was busy or throttling while it measured: the median may be off by that much.
UNSTABLE_CV = 0.25
UNSTABLE_P90_RATIO = 1.5
MIN_SAMPLES = 5


def _quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, as numpy's default does."""
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def decode_spread(samples: dict | None) -> dict:
    """p50, p90, min, count and coefficient of variation of the decode samples (ms per
    token), with `unstable` and the reason; all None when no samples were stored (reported
    results, or measured before samples were kept)."""
    values = [float(v) for v in (samples or {}).get("decode_ms") or [] if v is not None]
    values = [v for v in values if math.isfinite(v) and v > 0]
    if not values:
        return {
            "p50": None,
            "p90": None,
            "min": None,
            "n": 0,
            "cv": None,
            "unstable": False,
            "why": "",
        }
    ordered = sorted(values)
    p50 = _quantile(ordered, 0.5)
    p90 = _quantile(ordered, 0.9)
    mean = statistics.fmean(ordered)
    cv = statistics.stdev(ordered) / mean if len(ordered) > 1 else None
    why = []
    if len(ordered) < MIN_SAMPLES:
        why.append(f"only {len(ordered)} sample{'s' if len(ordered) != 1 else ''}")
    if cv is not None and cv > UNSTABLE_CV:
        why.append(f"samples vary by {cv:.0%} of their mean")
    if p90 > UNSTABLE_P90_RATIO * p50:
        why.append(f"p90 is {p90 / p50:.1f}× the median")
    return {
        "p50": p50,
        "p90": p90,
        "min": ordered[0],
        "n": len(ordered),
        "cv": cv,
        "unstable": bool(why),
        "why": "; ".join(why),
    }
