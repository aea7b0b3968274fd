"""Chart data: what the .json endpoints return and the page scripts draw with Plotly."""

from __future__ import annotations

import math
import re

from django.conf import settings

from .tables import Row

SI = re.compile(r"(\d+(?:\.\d+)?)\s*([kMBT])")
SCALE = {"k": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def pareto_front(points: list[dict], x: str, y: str) -> list[int]:
    """Indices of the points no other point beats with a smaller (or equal) x and a higher y,
    in order of increasing x."""
    ordered = sorted(
        (i for i, p in enumerate(points) if p.get(x) is not None and p.get(y) is not None),
        key=lambda i: (points[i][x], -points[i][y]),
    )
    front, best = [], float("-inf")
    for i in ordered:
        if points[i][y] > best:
            front.append(i)
            best = points[i][y]
    return front


def accuracy_vs_params(rows: list[Row]) -> dict:
    points = [
        {
            "name": row.name,
            "slug": row.slug,
            "params": row.params,
            "avg": round(row.avg.value, 2),
            "provenance": row.kind,
            "size_class": row.size_class,
            "source": row.source,
            # Best and second of its size class, as the table marks them: named on the chart.
            "mark": row.avg.mark or None,
        }
        for row in rows
        if row.params and row.avg.value is not None
    ]
    ticks = log_ticks([p["params"] for p in points])
    return {
        "x": "params",
        "y": "avg",
        "points": points,
        "pareto": pareto_front(points, "params", "avg"),
        "ticks": ticks,
        "x_range": log_range([p["params"] for p in points], [t["value"] for t in ticks]),
    }


def si_label(value: float) -> str:
    """125000000 → "125M", 1.5e9 → "1.5B": how the paper names model sizes."""
    for suffix in ("T", "B", "M", "k"):
        if value >= SCALE[suffix]:
            return f"{value / SCALE[suffix]:.3g}{suffix}"
    return f"{value:.3g}"


def log_ticks(values: list[float]) -> list[dict]:
    """Ticks for a log parameter axis: the size classes' names (125M, 350M, 1B, ...) that
    fall within the data, which readers of the paper know; a 1-2-5 ladder when fewer than two
    do (say, tiny demo models). Plotly's own ticks on an axis spanning about one decade are
    bare mantissas ("2", "5") in a small font."""
    if not values:
        return []
    low, high = min(values) / 1.3, max(values) * 1.3
    named = [_si_value(label) for label, _, _ in settings.SIZE_CLASSES]
    ticks = sorted(v for v in named if v is not None and low <= v <= high)
    if len(ticks) < 2:
        ladder = [m * 10**e for e in range(0, 14) for m in (1, 2, 5)]
        ticks = [v for v in ladder if low <= v <= high] or [10 ** round(math.log10(high))]
    else:
        # Models beyond the named sizes (3B, 7B) get ladder ticks, well clear of the named.
        ladder = [m * 10**e for e in range(0, 14) for m in (1, 2, 3, 5)]
        first, last = ticks[0], ticks[-1]
        ticks += [v for v in ladder if low <= v <= high and (v > last * 1.6 or v < first / 1.6)]
        ticks.sort()
    return [{"value": v, "label": si_label(v)} for v in ticks]


def log_range(values: list[float], ticks: list[float]) -> list[float] | None:
    """The log axis range (in decades) holding every point and tick, with a margin."""
    every = [v for v in [*values, *ticks] if v and v > 0]
    if not every:
        return None
    low, high = math.log10(min(every)), math.log10(max(every))
    pad = max(0.06, (high - low) * 0.06)
    return [round(low - pad, 4), round(high + pad, 4)]


def _si_value(label: str) -> float | None:
    match = SI.fullmatch(label.strip())
    return float(match[1]) * SCALE[match[2]] if match else None


def task_bars(rows: list[Row], tasks: list) -> dict:
    return {
        "tasks": [{"key": t.key, "label": t.label, "metric": t.headline_metric} for t in tasks],
        "series": [
            {
                "name": row.name if row.kind == "reported" else f"{row.name} (measured)",
                "slug": row.slug,
                "provenance": row.kind,
                "values": [_round(row.cells[t.key].value) for t in tasks],
                "stderr": [_round(row.cells[t.key].stderr) for t in tasks],
            }
            for row in rows
        ],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def accuracy_vs_latency(points: list[dict]) -> dict:
    """points: name, slug, execute_ms, avg, peak_rss_mb, benchmark, source."""
    return {
        "x": "execute_ms",
        "y": "avg",
        "size": "peak_rss_mb",
        "points": points,
        "pareto": pareto_front(points, "execute_ms", "avg"),
    }
