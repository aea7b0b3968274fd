from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils.text import slugify

from . import (
    charts,
    elsewhere,
    exports,
    modelpage,
    paper,
    quantization,
    ranking,
    reproduced,
    tables,
)
from .models import DeviceProfile, Entry, PaperRow
from .suites import csr_suite


def _leaderboard(request):
    suite = csr_suite()
    task_keys = list(suite.tasks.values_list("key", flat=True))
    filters = tables.Filters.from_query(request.GET, task_keys)
    shown, rows = tables.leaderboard(suite, filters)
    return suite, filters, shown, rows


def _metric(task, filters) -> str:
    """The metric a column shows for measured runs (reported rows keep the paper's)."""
    return task.headline_metric if filters.metric == "headline" else filters.metric


def index(request):
    suite, filters, shown, rows = _leaderboard(request)
    page = Paginator(rows, settings.LEADERBOARD_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    sort_links = {}
    for key in ["name", "size", "params", "layers", "avg", "execute_ms", *[t.key for t in shown]]:
        # First click sorts high-to-low (names A-Z), the second click reverses.
        first = key if key in ("name", "size", "execute_ms") else f"-{key}"
        q = query.copy()
        q["sort"] = (
            (first[1:] if first.startswith("-") else f"-{first}")
            if (filters.sort == first)
            else first
        )
        sort_links[key] = q.urlencode()
    headers = [
        {"key": t.key, "label": t.label, "metric": _metric(t, filters), "link": sort_links[t.key]}
        for t in shown
    ]
    for row in page:
        row.shown = [row.cells[t.key] for t in shown]
        row.rank_label = ranking.range_label(row)
    unranked = []
    if filters.benchmark == "full":
        # Sample-set and subset runs are shown, never ranked beside full-benchmark runs.
        runs = tables.EvaluationRun.objects.for_leaderboard(suite, "sample") | (
            tables.EvaluationRun.objects.for_leaderboard(suite, "limited")
        )
        unranked = tables.load_rows(suite, shown, runs.order_by("-created")[:20])
        for row in unranked:
            row.shown = [row.cells[t.key] for t in shown]
    ctx = {
        "profiles": DeviceProfile.objects.filter(results__isnull=False).distinct(),
        "unranked": unranked,
        "benchmarks": tables.EvaluationRun.Benchmark.choices,
        "suite": suite,
        "filters": filters,
        "headers": headers,
        "rows": page,
        "all_tasks": list(suite.tasks.all()),
        "page": page,
        "total": len(rows),
        "sizes": [label for label, _, _ in settings.SIZE_CLASSES],
        "metrics": tables.METRICS,
        "elsewhere": elsewhere.rows(filters) if filters.benchmark == "full" else [],
        "task_labels": {t.key: t.label for t in suite.tasks.all()},
        "query": query.urlencode(),
        "sort_links": sort_links,
    }
    return render(request, "leaderboard/index.html", ctx)


def leaderboard_csv(request):
    suite, filters, shown, rows = _leaderboard(request)
    return exports.stream_csv(
        "leaderboard",
        exports.row_csv_header(shown, latency=bool(filters.profile), ranks=True),
        (exports.row_csv_values(row, shown, filters.profile, ranks=True) for row in rows),
    )


def leaderboard_json(request):
    suite, filters, shown, rows = _leaderboard(request)
    head = {
        "suite": suite.slug,
        "filters": filters.as_dict(),
        "columns": [{"key": t.key, "label": t.label, "metric": _metric(t, filters)} for t in shown],
        "count": len(rows),
        # Reported elsewhere, average only (never ranked with the rows below).
        "reported_elsewhere": elsewhere.rows(filters) if filters.benchmark == "full" else [],
    }
    return exports.stream_json(
        head, "rows", (exports.row_json(row, shown, ranks=True) for row in rows)
    )


def chart_params_json(request):
    suite, filters, shown, rows = _leaderboard(request)
    return exports.JsonResponse(charts.accuracy_vs_params(rows))


def chart_tasks_json(request):
    slugs = [s for s in request.GET.get("models", "").split(",") if s][:12]
    if not slugs:
        return exports.json_error("pass ?models=slug1,slug2 (up to 12 model slugs)")
    suite = csr_suite()
    task_list = list(suite.tasks.all())
    runs = tables.EvaluationRun.objects.for_leaderboard(suite).filter(entry__slug__in=slugs)
    rows = tables.load_rows(suite, task_list, runs)
    return exports.JsonResponse(charts.task_bars(rows, task_list))


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
