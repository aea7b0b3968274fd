"""CSV and JSON twins of the tables: streamed, fixed columns, documented keys (README)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from django.http import JsonResponse, StreamingHttpResponse
from django.utils import timezone

from .ranking import range_label
from .tables import LATENCY_FIELDS, Cell, Row
from .units import rounded

# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def neutralise(value):
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def json_error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


# The leaderboard's rank columns (the paper's tables have none): rank_range as printed on
# the page ("2–4"; an en dash, which no spreadsheet reads as a date), and its two ends.
RANK_COLUMNS = ["rank", "rank_range", "rank_best", "rank_worst"]


def row_csv_header(tasks: list, latency: bool = False, ranks: bool = False) -> list[str]:
    header = [
        "model",
        "slug",
        "size_class",
        "params",
        "params_label",
        "layers",
        "provenance",
        "source",
        "benchmark",
        "avg",
    ]
    if ranks:
        header += ["metric", "avg_stderr", *RANK_COLUMNS, "contamination"]
    for task in tasks:
        header += [task.key, f"{task.key}_stderr"]
    if latency:
        header += ["profile", *LATENCY_FIELDS]
    return header


def row_csv_values(row: Row, tasks: list, profile: str = "", ranks: bool = False) -> list:
    values = [
        row.name,
        row.slug,
        row.size_class,
        row.params,
        row.params_display,
        row.layers,
        row.kind,
        row.source,
        row.benchmark,
        rounded(row.avg.value),
    ]
    if ranks:
        best, worst = row.rank_range or (None, None)
        metric = row.avg.metric or "headline"  # acc / acc_norm: the metric switch
        values += [metric, rounded(row.avg.stderr), row.rank, range_label(row), best, worst]
        values.append(" ".join(row.contamination))  # task keys, space-separated
    for task in tasks:
        cell = row.cells[task.key]
        values += [rounded(cell.value), rounded(cell.stderr)]
    if profile:
        values += [profile, *[rounded((row.latency or {}).get(f), 3) for f in LATENCY_FIELDS]]
    return [neutralise(v) for v in values]


def cell_json(cell: Cell) -> dict:
    return {
        "value": rounded(cell.value),
        "stderr": rounded(cell.stderr),
        "n": cell.n,
        "mark": cell.mark or None,
        "metric": cell.metric or None,
    }


def row_json(row: Row, tasks: list, ranks: bool = False) -> dict:
    data = {
        "model": row.name,
        "slug": row.slug,
        "url": f"/models/{row.slug}/",
        "size_class": row.size_class,
        "params": row.params,
        "params_label": row.params_display,
        "layers": row.layers,
        "provenance": row.kind,
        "source": row.source,
        "benchmark": row.benchmark,
        "avg": cell_json(row.avg),
        "scores": {task.key: cell_json(row.cells[task.key]) for task in tasks},
    }
    if ranks:
        data["contamination"] = (
            {"tasks": row.contamination, "source": row.contamination_source}
            if row.contamination
            else None
        )
        data["rank"] = row.rank
        data["rank_range"] = list(row.rank_range) if row.rank_range else None
    if row.group:
        data["group"] = row.group
    if row.latency is not None:
        data["latency"] = {f: rounded(row.latency.get(f), 3) for f in LATENCY_FIELDS}
    return data


class _Echo:
    def write(self, value):
        return value


def stream_csv(name: str, header: list[str], rows: Iterable[list]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for values in rows:
            yield writer.writerow(values)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    filename = f"{name}-{timezone.now().date().isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def stream_json(head: dict, items_key: str, items: Iterable[dict]) -> StreamingHttpResponse:
    """A JSON object whose list of items is written one item at a time."""
    head = {"generated": timezone.now().isoformat(timespec="seconds"), **head}

    def chunks() -> Iterator[str]:
        opening = json.dumps(head)[:-1]
        yield f'{opening}, "{items_key}": ['
        for i, item in enumerate(items):
            yield ("," if i else "") + json.dumps(item)
        yield "]}"

    return StreamingHttpResponse(chunks(), content_type="application/json")
