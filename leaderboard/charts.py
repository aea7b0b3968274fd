"""Chart data: what the .json endpoints return and the page scripts draw with Plotly."""

from __future__ import annotations

from .tables import Row


def pareto_front(points: list[dict], x: str, y: str, lower_x_is_better: bool = True) -> list[dict]:
    """Points not beaten by another point with smaller (or equal) x and higher y."""
    ordered = sorted(
        (p for p in points if p.get(x) is not None and p.get(y) is not None),
        key=lambda p: (p[x] if lower_x_is_better else -p[x], -p[y]),
    )
    front, best = [], float("-inf")
    for point in ordered:
        if point[y] > best:
            front.append(point)
            best = point[y]
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
        "pareto": [p["slug"] for p in pareto_front(points, "params", "avg")],
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
