from django.conf import settings
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils.text import slugify

from . import (
    boardread,
    charts,
    elsewhere,
    exports,
    leaderboard_page,
    modelpage,
    paper,
    quantization,
    ranking,
    reproduced,
    tables,
)
from .models import DeviceProfile, Entry, PaperRow
from .suites import csr_suite


def _metric(task, filters) -> str:
    """The metric a column shows for measured runs (reported rows keep the paper's)."""
    return task.headline_metric if filters.metric == "headline" else filters.metric


@leaderboard_page.cached
def index(request, listing):
    filters, shown = listing.filters, listing.shown
    total = boardread.count(listing.board, filters, listing.matching)
    paginator = boardread.CountedPaginator(listing.matching, settings.LEADERBOARD_PAGE_SIZE, total)
    page = paginator.get_page(request.GET.get("page"))
    rows = boardread.rows_of(page.object_list, filters.profile)
    query = request.GET.copy()
    query.pop("page", None)
    sorting = leaderboard_page.sorting(query, filters, shown)
    for row in rows:
        row.shown = [row.cells[t.key] for t in shown]
        row.rank_label = ranking.range_label(row)
    ctx = {
        "profiles": DeviceProfile.objects.filter(results__isnull=False).distinct(),
        "precisions": leaderboard_page.precisions(listing.suite),
        "unranked": leaderboard_page.unranked(listing.suite, filters, shown),
        "benchmarks": tables.EvaluationRun.Benchmark.choices,
        "suite": listing.suite,
        "filters": filters,
        "headers": [
            {"key": t.key, "label": t.label, "metric": _metric(t, filters), **sorting[t.key]}
            for t in shown
        ],
        "rows": rows,
        "all_tasks": list(listing.suite.tasks.all()),
        "page": page,
        "total": total,
        "updating": listing.updating,
        "sizes": [label for label, _, _ in settings.SIZE_CLASSES],
        "metrics": tables.METRICS,
        "elsewhere": elsewhere.rows(filters) if filters.benchmark == "full" else [],
        "task_labels": {t.key: t.label for t in listing.suite.tasks.all()},
        "query": query.urlencode(),
        "sorting": sorting,
        "scope_link": leaderboard_page.scope_link(query, filters),
    }
    return render(request, "leaderboard/index.html", ctx)


@leaderboard_page.cached
def leaderboard_csv(request, listing):
    filters, shown = listing.filters, listing.shown
    return exports.stream_csv(
        "leaderboard",
        exports.row_csv_header(shown, latency=bool(filters.profile), ranks=True),
        (
            exports.row_csv_values(row, shown, filters.profile, ranks=True)
            for row in boardread.stream(listing.matching, filters.profile)
        ),
    )


@leaderboard_page.cached
def leaderboard_json(request, listing):
    filters, shown = listing.filters, listing.shown
    head = {
        "suite": listing.suite.slug,
        "filters": filters.as_dict(),
        "columns": [{"key": t.key, "label": t.label, "metric": _metric(t, filters)} for t in shown],
        "count": boardread.count(listing.board, filters, listing.matching),
        # Reported elsewhere, average only (never ranked with the rows below).
        "reported_elsewhere": elsewhere.rows(filters) if filters.benchmark == "full" else [],
    }
    rows = boardread.stream(listing.matching, filters.profile)
    return exports.stream_json(head, "rows", (exports.row_json(r, shown, ranks=True) for r in rows))


@leaderboard_page.cached
def chart_params_json(request, listing):
    rows = boardread.rows_of(listing.matching, listing.filters.profile)
    return exports.JsonResponse(charts.accuracy_vs_params(rows))


def chart_tasks_json(request):
    slugs = [s for s in request.GET.get("models", "").split(",") if s][:12]
    if not slugs:
        return exports.json_error("pass ?models=slug1,slug2 (up to 12 model slugs)")
    suite = csr_suite()
    task_list = list(suite.tasks.all())
    # The columns chosen on the page (?cols=, as the table reads them); all by default.
    cols = tables.Filters.from_query(request.GET, [t.key for t in task_list]).cols
    shown = [t for t in task_list if not cols or t.key in cols]
    runs = tables.EvaluationRun.objects.for_leaderboard(suite).filter(entry__slug__in=slugs)
    rows = tables.load_rows(suite, shown, runs)
    return exports.JsonResponse(charts.task_bars(rows, shown))


def _with_reproduced(entry) -> dict:
    data = modelpage.model_data(entry)
    paper = reproduced.paper_entry_of(entry)
    data["reproduced"] = reproduced.pair_for(paper, csr_suite()) if paper else None
    return data


def model_detail(request, slug):
    entry = get_object_or_404(Entry, slug=slug)
    m = _with_reproduced(entry)
    ladder = quantization.ladder_table(m["variants"], csr_suite().tasks.all())
    return render(request, "leaderboard/model.html", {"m": m, "ladder": ladder})


def model_json(request, slug):
    entry = Entry.objects.filter(slug=slug).first()
    if entry is None:
        return exports.json_error(f"no model with slug {slug!r}", status=404)
    return exports.JsonResponse(_with_reproduced(entry))


def _paper_tables() -> dict[str, tuple[str, str]]:
    """slug -> (table name, suite slug) for every imported paper table."""
    pairs = PaperRow.objects.values_list("table", "run__suite__slug").distinct()
    return {slugify(table): (table, suite) for table, suite in sorted(pairs)}


def _paper(table_slug):
    known = _paper_tables()
    if table_slug not in known:
        raise Http404(f"no paper table {table_slug!r}")
    table, suite_slug = known[table_slug]
    suite = tables.Suite.objects.get(slug=suite_slug)
    task_list, rows = tables.paper_table(suite, table)
    return table, suite, task_list, rows


def paper_index(request):
    return render(
        request,
        "leaderboard/paper_index.html",
        {"tables": paper.index(), "table7_rows": paper.table7_rows()},
    )


def paper_detail(request, table_slug):
    table, suite, task_list, rows = _paper(table_slug)
    groups = []
    for row in rows:
        row.cell_list = [row.cells[t.key] for t in task_list]
        if not groups or groups[-1][0] != row.group:
            groups.append((row.group, []))
        groups[-1][1].append(row)
    return render(
        request,
        "leaderboard/paper.html",
        {
            "table": table,
            "caption": paper.caption(table, suite.description),
            "slug": table_slug,
            "suite": suite,
            "tasks": task_list,
            "groups": groups,
            "has_avg": any(r.avg.value is not None for r in rows),
            "has_layers": any(r.layers for r in rows),
            # One source for every row is said once above the table, not in a column.
            "common_source": sources.pop() if len(sources := {r.source for r in rows}) == 1 else "",
        },
    )


def paper_csv(request, table_slug):
    table, suite, task_list, rows = _paper(table_slug)
    header = ["group", *exports.row_csv_header(task_list)]
    return exports.stream_csv(
        table_slug,
        header,
        ([exports.neutralise(r.group), *exports.row_csv_values(r, task_list)] for r in rows),
    )


def paper_json(request, table_slug):
    if table_slug not in _paper_tables():
        return exports.json_error(f"no paper table {table_slug!r}", status=404)
    table, suite, task_list, rows = _paper(table_slug)
    head = {
        "table": table,
        "suite": suite.slug,
        "columns": [{"key": t.key, "label": t.label} for t in task_list],
        "count": len(rows),
    }
    return exports.stream_json(head, "rows", (exports.row_json(r, task_list) for r in rows))
