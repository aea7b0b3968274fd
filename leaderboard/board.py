"""The precomputed leaderboard: built when its data changes, read by index on every request.

Why a table (models/board.py) and not the cache or a file: it is shared by every web and
worker process, survives a restart, works the same on SQLite and PostgreSQL, is rebuilt in
one transaction (a reader sees the old rows or the new ones, never a mix), and its rows are
filtered, sorted and paged by the database's indexes, so `/` reads the 100 rows it shows.

Freshness: every write to what the board shows (entries, runs, scores, latency, profiles,
paper placements) bumps DataVersion in the same transaction (signals below; bulk writers
call changed() themselves). A board remembers the version and the settings (size classes,
row format) it was built from; a board that differs is stale. A stale board is rebuilt by
the debounced Celery task on the `default` queue, or at once by the request that finds it
stale (the synchronous fallback: a fresh site, the tests). Only a large board (over
BOARD_SYNC_ROWS rows) whose rebuild is already on its way is served stale, and the page says
"updating". Each variant (suite, benchmark, metric, provenance filter) is built on first
use, since the marks and ranks differ between them; size, search and contamination filters
apply after the marks and are WHERE clauses on one board.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from . import queueing, ranking, tables
from .models import (
    REFERENCE_PRECISION,
    Board,
    BoardRow,
    DataVersion,
    DeviceProfile,
    Entry,
    EvaluationRun,
    LatencyResult,
    PaperRow,
    TaskScore,
)

log = logging.getLogger(__name__)

# Bump when the layout of BoardRow.data changes: every board is then rebuilt once.
FORMAT = 1


def fingerprint() -> str:
    """What a board depends on besides the data: the size classes and the row format."""
    text = json.dumps([FORMAT, settings.SIZE_CLASSES])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_version() -> DataVersion:
    version = DataVersion.objects.filter(pk=1).first()
    if version is None:  # an emptied database (a test's flush): start again
        version, _ = DataVersion.objects.get_or_create(pk=1)
    return version


def changed(**_) -> None:
    """Mark every board stale (in the caller's transaction) and, once it commits, have a
    worker rebuild them. A signal receiver, and called by bulk writers directly."""
    bumped = DataVersion.objects.filter(pk=1).update(
        version=F("version") + 1, changed=timezone.now()
    )
    if not bumped:
        DataVersion.objects.get_or_create(pk=1, defaults={"version": 1})
    transaction.on_commit(schedule)


def schedule() -> bool:
    """Send one debounced rebuild message, unless one is already on its way: changes within
    BOARD_DEBOUNCE_S share one rebuild. True when a message is (or was already) sent."""
    now = timezone.now()
    lost = now - timedelta(seconds=settings.BOARD_DEBOUNCE_S + settings.BOARD_MESSAGE_LOST_S)
    claimed = (
        DataVersion.objects.filter(pk=1)
        .filter(Q(scheduled__isnull=True) | Q(scheduled__lt=lost))
        .update(scheduled=now)
    )
    if not claimed:
        return DataVersion.objects.filter(pk=1, scheduled__isnull=False).exists()
    try:
        queueing.send_board_rebuild(countdown=settings.BOARD_DEBOUNCE_S)
    except Exception:  # no broker: requests rebuild synchronously instead
        log.warning("board rebuild not queued (broker unreachable)", exc_info=True)
        DataVersion.objects.filter(pk=1).update(scheduled=None)
        return False
    return True


def is_fresh(board: Board, version: DataVersion) -> bool:
    return board.version == version.version and board.fingerprint == fingerprint()


def variant(suite, filters: tables.Filters) -> dict:
    """The board a request reads: the provenance filter changes the marks (it applies first)."""
    kinds = sorted(set(filters.kinds))
    precision = filters.precision
    # A board per precision that some run has, no more: any other name would add a row.
    if (
        precision != REFERENCE_PRECISION
        and not EvaluationRun.objects.filter(suite=suite, precision=precision).exists()
    ):
        precision = REFERENCE_PRECISION
    return {
        "suite": suite,
        "benchmark": filters.benchmark,
        "metric": filters.metric,
        "kinds": kinds[0] if len(kinds) == 1 else "",
        "precision": precision,
    }


def current(suite, filters: tables.Filters) -> tuple[Board, DataVersion, bool]:
    """The board for these filters, its data version, and whether it is being updated
    (served stale while its rebuild runs: only large boards, see the module's docstring)."""
    version = data_version()
    board = Board.objects.filter(**variant(suite, filters)).first()
    if board is not None and is_fresh(board, version):
        return board, version, False
    if board is not None and board.total > settings.BOARD_SYNC_ROWS and _rebuild_coming(version):
        return board, version, True
    if board is None:
        board, _ = Board.objects.get_or_create(**variant(suite, filters))
    return build(board.pk), version, False


def _rebuild_coming(version: DataVersion) -> bool:
    """Whether a worker will rebuild soon: a message was sent within the debounce and the
    time a worker takes to answer, or is sent now. Past that (no worker takes the
    `default` queue, or the message was lost) the request rebuilds the board itself."""
    if version.scheduled is None:
        return schedule()
    waited = (timezone.now() - version.scheduled).total_seconds()
    return waited < settings.BOARD_DEBOUNCE_S + settings.BOARD_MESSAGE_LOST_S


def rebuild_stale() -> int:
    """The Celery task's work: rebuild every stale board; how many were rebuilt."""
    DataVersion.objects.filter(pk=1).update(scheduled=None)  # later changes send anew
    version = data_version()
    stale = [b.pk for b in Board.objects.all() if not is_fresh(b, version)]
    for pk in stale:
        build(pk)
    return len(stale)


def build(pk: int) -> Board:
    """Rebuild one board wholesale, in one transaction. The version is read before the data,
    so a change that lands during the build leaves the board stale, never wrongly fresh."""
    with transaction.atomic():
        board = Board.objects.select_for_update().select_related("suite").get(pk=pk)
        version = data_version()
        if is_fresh(board, version):  # another process built it while we waited
            return board
        with tables.gc_paused():
            rows = compute(board)
        order = tables.size_order()
        counts = defaultdict(int)
        BoardRow.objects.filter(board=board).delete()
        _insert(board, (_board_row(board, i, row, order, counts) for i, row in enumerate(rows)))
        board.version, board.fingerprint = version.version, fingerprint()
        board.built, board.total, board.counts = timezone.now(), len(rows), dict(counts)
        board.save()
    return board


def compute(board: Board) -> list[tables.Row]:
    """Every row of one board with its marks, ranks and latency, in the default order."""
    suite = board.suite
    tasks = list(suite.tasks.all())
    runs = EvaluationRun.objects.for_leaderboard(suite, board.benchmark, board.precision)
    rows = tables.load_rows(suite, tasks, runs, board.metric)
    if board.kinds:
        rows = [r for r in rows if r.kind == board.kinds]
    tables.mark_best(rows, [t.key for t in tasks])
    ranking.attach_ranks(rows)
    latency = defaultdict(dict)
    results = LatencyResult.objects.filter(
        entry_id__in=runs.values("entry_id"), precision=board.precision
    )
    for result in results.values("entry_id", "profile__slug", *tables.LATENCY_FIELDS):
        entry_id, slug = result.pop("entry_id"), result.pop("profile__slug")
        latency[entry_id][slug] = result
    for row in rows:
        row.latency = latency.get(row.entry_id, {})
    return tables.sort_rows(rows, "")


def _cell(cell: tables.Cell) -> list:
    return [cell.value, cell.stderr, cell.n, cell.mark, cell.metric]


# BoardRow's columns in the order _board_row gives their values.
COLUMNS = [
    "board_id",
    "position",
    "size_pos",
    "size_class",
    "contaminated",
    "name",
    "name_key",
    "params",
    "layers",
    "avg",
    "data",
]


def _board_row(board, position: int, row: tables.Row, order: dict, counts) -> tuple:
    contaminated = bool(row.contamination)
    counts[f"{row.size_class}|{int(contaminated)}"] += 1
    data = {
        "run": row.run_id,
        "entry": row.entry_id,
        "name": row.name,
        "slug": row.slug,
        "params": row.params,
        "params_label": row.params_label,
        "layers": row.layers,
        "size_class": row.size_class,
        "kind": row.kind,
        "source": row.source,
        "benchmark": row.benchmark,
        "avg": _cell(row.avg),
        "cells": {key: _cell(cell) for key, cell in row.cells.items()},
        "rank": row.rank,
        "rank_range": list(row.rank_range) if row.rank_range else None,
        "contamination": row.contamination,
        "contamination_source": row.contamination_source,
        "latency": row.latency,
    }
    return (
        board.pk,
        position,
        order.get(row.size_class, 99),
        row.size_class,
        contaminated,
        row.name[:200],
        row.name.lower()[:200],
        row.params,
        row.layers,
        row.avg.value,
        data,
    )


def _insert(board: Board, rows) -> None:
    """The rows in one statement: COPY on PostgreSQL, executemany elsewhere. Not
    bulk_create: on PostgreSQL it sends arrays whose JSON psycopg escapes quote by quote
    with a regular expression, and it builds a model per row (measured: 90 of 110 s of a
    100,000-row build under the profiler); on SQLite its batches of 90 rows make the
    number of queries grow with the board."""
    table, columns = BoardRow._meta.db_table, ", ".join(COLUMNS)
    encoded = ((*values[:-1], json.dumps(values[-1])) for values in rows)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for values in encoded:
                    copy.write_row(values)
        else:
            marks = ", ".join(["%s"] * len(COLUMNS))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", encoded)


# Score rows are deleted only with their run (whose own signal fires), so they have no
# delete receiver: that keeps cascading deletes of many scores a single query.
WATCHED = [Entry, EvaluationRun, LatencyResult, DeviceProfile, PaperRow]


def connect() -> None:
    for model in WATCHED:
        post_save.connect(changed, sender=model, dispatch_uid=f"board-{model.__name__}-save")
        post_delete.connect(changed, sender=model, dispatch_uid=f"board-{model.__name__}-del")
    post_save.connect(changed, sender=TaskScore, dispatch_uid="board-TaskScore-save")
