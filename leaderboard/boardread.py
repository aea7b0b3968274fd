"""Reading the precomputed board (leaderboard/board.py): a page is one indexed query for its
rows; the twins stream every matching row with one small decode per row.

Served by indexes: the default order (position) with or without the size filter, and the
average within size classes. Other sorts and the name search are one pass over the
board's narrow rows in the database (no Python per row), then LIMIT: no row object is
built for rows the page does not show. Counts come from the board's per-class tallies
unless the page searches.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.core.paginator import Paginator
from django.db.models import F, FloatField, QuerySet
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast
from django.utils.functional import cached_property

from . import tables
from .models import Board, BoardRow

# Sort keys that are columns of BoardRow; the rest (task keys, execute_ms) live in data.
COLUMNS = {"name": "name_key", "size": "size_pos", "params": "params", "layers": "layers"}


def matching(board: Board, filters: tables.Filters) -> QuerySet:
    """The board's rows that pass the filters applied after the marks, in the asked order."""
    rows = BoardRow.objects.filter(board=board)
    if filters.sizes:
        rows = rows.filter(size_class__in=filters.sizes)
    if filters.q:
        rows = rows.filter(name__icontains=filters.q)
    if filters.contamination:
        rows = rows.filter(contaminated=filters.contamination == "only")
    return rows.order_by(*ordering(filters))


def _sort_expression(key: str, profile: str):
    if key in COLUMNS:
        return F(COLUMNS[key])
    if key == "avg":
        return F("avg")
    if key == "execute_ms":
        # A profile slug may hold "__", so the JSON path is spelled out, not written as a lookup.
        latency = KeyTransform(profile, KeyTransform("latency", "data"))
        return Cast(KeyTextTransform("execute_ms", latency), FloatField())
    cell = KeyTransform(key, KeyTransform("cells", "data"))
    return Cast(KeyTextTransform("0", cell), FloatField())


def ordering(filters: tables.Filters) -> list:
    """The default is the paper's layout (position). A sorted column sorts within size
    classes unless scope=all; rows without a value go last whichever the direction."""
    if not filters.sort or (filters.sort == "execute_ms" and not filters.profile):
        return ["position"]
    key = filters.sort.lstrip("-")
    expr = _sort_expression(key, filters.profile)
    expr = expr.desc(nulls_last=True) if filters.sort.startswith("-") else expr.asc(nulls_last=True)
    within = filters.scope == "class" and key != "size"
    return ["size_pos", expr, "position"] if within else [expr, "position"]


def count(board: Board, filters: tables.Filters, rows: QuerySet) -> int:
    if filters.q:
        return rows.count()
    wanted = {"": None, "exclude": "0", "only": "1"}[filters.contamination]
    total = 0
    for key, n in board.counts.items():
        size, contaminated = key.rsplit("|", 1)
        if filters.sizes and size not in filters.sizes:
            continue
        if wanted is not None and contaminated != wanted:
            continue
        total += n
    return total


class CountedPaginator(Paginator):
    """A paginator told its count (from the board's tallies), so it runs no COUNT(*)."""

    def __init__(self, object_list, per_page, known: int):
        super().__init__(object_list, per_page)
        self.known = known

    @cached_property
    def count(self) -> int:
        return self.known


def to_row(data: dict, profile: str = "") -> tables.Row:
    def cell(values) -> tables.Cell:
        return tables.Cell(*values)

    row = tables.Row(
        run_id=data["run"],
        entry_id=data["entry"],
        name=data["name"],
        slug=data["slug"],
        params=data["params"],
        params_label=data["params_label"],
        layers=data["layers"],
        size_class=data["size_class"],
        kind=data["kind"],
        source=data["source"],
        benchmark=data["benchmark"],
        avg=cell(data["avg"]),
        cells={key: cell(values) for key, values in data["cells"].items()},
        rank=data["rank"],
        rank_range=tuple(data["rank_range"]) if data["rank_range"] else None,
        contamination=data["contamination"],
        contamination_source=data["contamination_source"],
    )
    if profile:
        row.latency = data["latency"].get(profile) or dict.fromkeys(tables.LATENCY_FIELDS)
    return row


def rows_of(queryset: QuerySet, profile: str) -> list[tables.Row]:
    return [to_row(data, profile) for data in queryset.values_list("data", flat=True)]


def stream(queryset: QuerySet, profile: str) -> Iterator[tables.Row]:
    """Every matching row, fetched in chunks (a server-side cursor on PostgreSQL)."""
    for data in queryset.values_list("data", flat=True).iterator(chunk_size=2000):
        yield to_row(data, profile)
