"""What `/` and its twins share besides the board: the request's filters and board (one
Listing), HTTP caching from the board's version, the sort links, and the unranked table."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.http import HttpResponse
from django.utils.cache import get_conditional_response
from django.utils.http import http_date

from . import board as boards
from . import boardread, tables
from .models import REFERENCE_PRECISION, Board, DataVersion, EvaluationRun, Suite
from .suites import csr_suite


@dataclass
class Listing:
    suite: Suite
    filters: tables.Filters
    shown: list
    board: Board
    version: DataVersion
    updating: bool  # a large stale board served while the worker rebuilds it
    matching: object  # the filtered, ordered rows: a lazy queryset

    @property
    def etag(self) -> str:
        # The data version covers the board and the rest of the page (the unranked and
        # reported-elsewhere tables, the profiles); the fingerprint a settings change. The
        # times make it unique to one build even if a restored database repeats a version.
        changed = self.version.changed.timestamp()
        built = self.board.built.timestamp() if self.board.built else 0
        parts = [self.version.version, changed, self.board.pk, self.board.version, built]
        return f'"board-{"-".join(map(str, parts))}-{boards.fingerprint()}"'


def listing(request) -> Listing:
    suite = csr_suite()
    tasks = list(suite.tasks.all())
    filters = tables.Filters.from_query(request.GET, [t.key for t in tasks])
    shown = [t for t in tasks if not filters.cols or t.key in filters.cols]
    board, version, updating = boards.current(suite, filters)
    matching = boardread.matching(board, filters)
    return Listing(suite, filters, shown, board, version, updating, matching)


def cached(view):
    """ETag and Last-Modified from the board's data version: a repeated load answers 304
    before anything is rendered (Django's ConditionalGetMiddleware renders first). A
    rendered page (not a streamed twin) is also kept in the cache under its ETag and URL for
    LEADERBOARD_PAGE_CACHE_S: the key changes with the data, so nothing is invalidated,
    and a burst of loads of a shared link renders the page once."""

    @wraps(view)
    def wrapped(request):
        found = listing(request)
        changed = int(found.version.changed.timestamp())  # HTTP dates have whole seconds
        response = get_conditional_response(request, etag=found.etag, last_modified=changed)
        key = _page_key(found, request)
        if response is None and key and (hit := cache.get(key)) is not None:
            response = HttpResponse(hit[1], content_type=hit[0])
        if response is None:
            response = view(request, found)
            if key and not response.streaming and response.status_code == 200:
                kept = (response["Content-Type"], response.content)
                cache.set(key, kept, settings.LEADERBOARD_PAGE_CACHE_S)
        response["ETag"] = found.etag
        response["Last-Modified"] = http_date(changed)
        return response

    return wrapped


def _page_key(found: Listing, request) -> str:
    if not settings.LEADERBOARD_PAGE_CACHE_S or found.updating:
        return ""
    text = f"{found.etag} {request.path} {request.META.get('QUERY_STRING', '')}"
    return "board-page:" + hashlib.sha256(text.encode()).hexdigest()


def sorting(query, filters: tables.Filters, shown: list) -> dict[str, dict]:
    """Per sortable column: the link that sorts by it (first click high-to-low, names A-Z;
    the second reverses), and its direction now (aria-sort and the arrow shown)."""
    out = {}
    for key in ["name", "size", "params", "layers", "avg", "execute_ms", *[t.key for t in shown]]:
        first = key if key in ("name", "size", "execute_ms") else f"-{key}"
        q = query.copy()
        flipped = first[1:] if first.startswith("-") else f"-{first}"
        q["sort"] = flipped if filters.sort == first else first
        direction = ""
        if filters.sort.lstrip("-") == key:
            direction = "descending" if filters.sort.startswith("-") else "ascending"
        arrow = {"descending": "▼", "ascending": "▲"}.get(direction, "")
        out[key] = {"link": q.urlencode(), "direction": direction, "arrow": arrow}
    return out


def scope_link(query, filters: tables.Filters) -> str:
    """The query that switches between sorting within size classes and across them."""
    q = query.copy()
    if filters.scope == "all":
        q.pop("scope", None)
    else:
        q["scope"] = "all"
    return q.urlencode()


def _in_sizes(sizes: list[str]) -> Q:
    """Entries whose size class (pinned, else from params) is one of these, in SQL."""
    bounds = {label: (low, high) for label, low, high in settings.SIZE_CLASSES}
    wanted = Q(entry__size_class_pin__in=sizes)
    for size in sizes:
        low, high = bounds[size]
        wanted |= Q(entry__size_class_pin="", entry__params__gte=low, entry__params__lt=high)
    return wanted


def unranked(suite: Suite, filters: tables.Filters, shown: list) -> list[tables.Row]:
    """The latest 20 sample-set and subset runs, under the page's filters (all measured)."""
    if filters.benchmark != "full" or (filters.kinds and "measured" not in filters.kinds):
        return []
    runs = EvaluationRun.objects.for_leaderboard(suite, "sample", filters.precision) | (
        EvaluationRun.objects.for_leaderboard(suite, "limited", filters.precision)
    )
    if filters.q:
        runs = runs.filter(entry__name__icontains=filters.q)
    if filters.sizes:
        runs = runs.filter(_in_sizes(filters.sizes))
    if filters.contamination == "exclude":
        runs = runs.filter(entry__contamination="")
    elif filters.contamination == "only":
        runs = runs.exclude(entry__contamination="")
    rows = tables.load_rows(suite, shown, runs.order_by("-created")[:20])
    for row in rows:
        row.shown = [row.cells[t.key] for t in shown]
    return rows


def precisions(suite: Suite) -> list[str]:
    """The rungs of the quantization ladder some finished run of the suite has, the
    reference first: the precision filter's choices (a GGUF type such as Q4_1 included)."""
    found = set(
        EvaluationRun.objects.filter(suite=suite, status=EvaluationRun.Status.DONE)
        .values_list("precision", flat=True)
        .distinct()
    )
    return [REFERENCE_PRECISION, *sorted(found - {REFERENCE_PRECISION})]
