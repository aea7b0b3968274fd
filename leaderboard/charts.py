"""Chart data: what the .json endpoints return and the page scripts draw with Plotly."""

from __future__ import annotations

from .tables import Row


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
        }
        for row in rows
        if row.params and row.avg.value is not None
    ]
    return {
        "x": "params",
        "y": "avg",
        "points": points,
        "pareto": pareto_front(points, "params", "avg"),
    }


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
