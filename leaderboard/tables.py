"""The leaderboard's rows, assembled in Python from runs and scores: what leaderboard/board.py
precomputes when data changes (`/` and its twins then read the board, not these), and the
paper's tables as printed. Three queries whatever the number of rows: the tasks, the runs
with their entries, the scores.
"""

from __future__ import annotations

import gc
import re
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import F, Q
from django.db.models.fields.json import KT

from .models import (
    REFERENCE_PRECISION,
    DeviceProfile,
    EvaluationRun,
    PaperRow,
    Suite,
    TaskScore,
    provenance_label,
    size_class_for,
)
from .units import format_params, percent

KIND_LABELS = {"reported": "reported", "measured": "measured"}
# The metric switch: each task's headline metric (the paper's), or acc / acc_norm for every
# task of a measured run. A reported row keeps the paper's number under its stored metric.
METRICS = ("headline", "acc", "acc_norm")
# A precision's name (fp32, int4, a GGUF type such as Q4_1): anything else means the default.
PRECISION_NAME = re.compile(r"[A-Za-z0-9_]{1,20}")


@dataclass
class Cell:
    value: float | None  # percent
    stderr: float | None = None  # percent
    n: int | None = None
    mark: str = ""  # "best", "second" or ""
    metric: str = ""  # the metric the number was stored under (acc, acc_norm)


@dataclass
class Row:
    run_id: int
    name: str
    slug: str
    params: int | None
    params_label: str
    layers: int | None
    size_class: str
    kind: str
    source: str
    benchmark: str
    avg: Cell
    cells: dict[str, Cell] = field(default_factory=dict)
    group: str = ""
    entry_id: int | None = None
    # Latency on the chosen device profile: execute_ms, decode_tok_s, peak_rss_mb.
    latency: dict | None = None
    # Within the size class, by average (ranking.attach_ranks; the leaderboard only).
    rank: int | None = None
    rank_range: tuple[int, int] | None = None
    # Task keys the model trained on (the entry's contamination flag) and who says so.
    contamination: list[str] = field(default_factory=list)
    contamination_source: str = ""

    @property
    def params_display(self) -> str:
        return self.params_label or format_params(self.params)


@dataclass
class Filters:
    q: str = ""
    sizes: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    sort: str = ""
    cols: list[str] = field(default_factory=list)
    benchmark: str = "full"
    profile: str = ""
    metric: str = "headline"  # or acc / acc_norm: measured runs only (METRICS)
    contamination: str = ""  # "exclude" or "only" flagged entries; "" shows all
    # A sorted column sorts within size classes ("class", as the paper groups its rows) or
    # across them ("all").
    scope: str = "class"
    # The runs ranked: the reference (fp32, and the papers' rows) unless a variant is asked.
    precision: str = REFERENCE_PRECISION

    @classmethod
    def from_query(cls, query, task_keys: list[str]) -> Filters:
        # Columns come as ?cols=a,b or as repeated ?cols=a&cols=b (the form's checkboxes).
        wanted = {c for value in query.getlist("cols") for c in value.split(",")}
        cols = [key for key in task_keys if key in wanted]
        kinds = [k for k in query.getlist("provenance") if k in KIND_LABELS]
        known_sizes = [label for label, _, _ in settings.SIZE_CLASSES]
        sizes = [s for s in query.getlist("size") if s in known_sizes]
        sort = query.get("sort", "")
        sortable = {"name", "params", "layers", "avg", "size", "execute_ms", *task_keys}
        if sort.lstrip("-") not in sortable:
            sort = ""
        profile = query.get("profile", "")
        if profile and not DeviceProfile.objects.filter(slug=profile).exists():
            profile = ""
        benchmark = query.get("benchmark", "full")
        if benchmark not in EvaluationRun.Benchmark.values:
            benchmark = "full"
        metric = query.get("metric", "headline")
        if metric not in METRICS:
            metric = "headline"
        contamination = query.get("contamination", "")
        precision = query.get("precision", REFERENCE_PRECISION)
        if not PRECISION_NAME.fullmatch(precision):
            precision = REFERENCE_PRECISION
        return cls(
            scope="all" if query.get("scope") == "all" else "class",
            precision=precision,
            contamination=contamination if contamination in ("exclude", "only") else "",
            metric=metric,
            q=query.get("q", "").strip()[:100],
            sizes=sizes,
            kinds=kinds,
            sort=sort,
            cols=cols,
            benchmark=benchmark,
            profile=profile,
        )

    def as_dict(self) -> dict:
        return {
            "q": self.q,
            "size": self.sizes,
            "provenance": self.kinds,
            "sort": self.sort,
            "cols": self.cols,
            "benchmark": self.benchmark,
            "profile": self.profile,
            "metric": self.metric,
            "contamination": self.contamination,
            "scope": self.scope,
            "precision": self.precision,
        }

    def keeps(self, contamination) -> bool:
        """Whether the contamination filter keeps an entry with these flagged tasks."""
        if self.contamination == "exclude":
            return not contamination
        if self.contamination == "only":
            return bool(contamination)
        return True


def load_rows(suite: Suite, tasks: list, runs, metric: str = "headline") -> list[Row]:
    """Rows of the given runs queryset with their scores, in two queries: each task's
    headline metric, or (metric switch) `metric` for measured runs."""
    scores = defaultdict(dict)
    wanted = Q(metric=F("task__headline_metric"))
    if metric != "headline":
        wanted |= Q(metric=metric)
    score_qs = TaskScore.objects.filter(wanted, run__in=runs.values("pk")).values_list(
        "run_id",
        "task__key",
        "metric",
        "task__headline_metric",
        "value",
        "stderr",
        "n",
        "run__kind",
    )
    for run_id, key, stored, headline, value, stderr, n, kind in score_qs:
        switched = metric != "headline" and kind != EvaluationRun.Kind.REPORTED
        if stored == (metric if switched else headline):
            scores[run_id][key] = Cell(percent(value), percent(stderr), n, metric=stored)
    rows = []
    fields = [
        "pk",
        "entry_id",
        "kind",
        "citation",
        "benchmark",
        "avg",
        "lm_eval_version",
        "device",
        "entry__name",
        "entry__slug",
        "entry__params",
        "entry__params_label",
        "entry__layers",
        "entry__size_class_pin",
        "entry__contamination",
        "entry__contamination_source",
    ]
    # Plain values, not model instances: this loop runs once per row of a 10,000-row board.
    # Only the two provenance keys the label needs: a measured run's provenance is large.
    runs = runs.annotate(
        lm_eval_version=KT("provenance__lm_eval_version"), device=KT("provenance__device")
    )
    for run in runs.values(*fields):
        run_scores = scores[run["pk"]]
        rows.append(
            Row(
                run_id=run["pk"],
                entry_id=run["entry_id"],
                name=run["entry__name"],
                slug=run["entry__slug"],
                params=run["entry__params"],
                params_label=run["entry__params_label"],
                layers=run["entry__layers"],
                size_class=run["entry__size_class_pin"] or size_class_for(run["entry__params"]),
                kind=run["kind"],
                source=run["citation"]
                if run["kind"] == "reported"
                else provenance_label(run["kind"], run["citation"], run["benchmark"], run),
                benchmark=run["benchmark"],
                avg=Cell(percent(run["avg"])),
                cells={t.key: run_scores.get(t.key) or Cell(None) for t in tasks},
                contamination=[k for k in run["entry__contamination"].split(",") if k],
                contamination_source=run["entry__contamination_source"],
            )
        )
        if metric != "headline" and run["kind"] != EvaluationRun.Kind.REPORTED:
            # The average of the switched metric, over the same tasks as the headline one.
            values = [rows[-1].cells[t.key].value for t in tasks]
            whole = tasks and None not in values
            rows[-1].avg = Cell(sum(values) / len(values) if whole else None, metric=metric)
    return rows


def mark_best(rows: list[Row], keys: list[str], by=lambda row: row.size_class) -> None:
    """Mark the best and second-best value of each column within each group, as the paper
    does (ties share the mark)."""
    groups = defaultdict(list)
    for row in rows:
        groups[by(row)].append(row)
    for members in groups.values():
        for key in [*keys, "avg"]:
            cells = [row.avg if key == "avg" else row.cells[key] for row in members]
            best, second = top_two(round(c.value, 6) for c in cells if c.value is not None)
            marks = {best: "best", second: "second", None: ""}
            for cell in cells:
                value = None if cell.value is None else round(cell.value, 6)
                cell.mark = marks.get(value, "")


def top_two(values) -> tuple[float | None, float | None]:
    """The largest and the second-largest distinct value, in one pass."""
    best = second = None
    for value in values:
        if best is None or value > best:
            best, second = value, best
        elif value != best and (second is None or value > second):
            second = value
    return best, second


def size_order() -> dict[str, int]:
    order = {label: i for i, (label, _, _) in enumerate(settings.SIZE_CLASSES)}
    order[""] = len(order)
    return order


def sort_rows(rows: list[Row], sort: str) -> list[Row]:
    order = size_order()
    if not sort:
        # The paper's layout: size classes in order, best average first within a class.
        return sorted(
            rows, key=lambda r: (order.get(r.size_class, 99), -(r.avg.value or -1), r.name.lower())
        )
    key = sort.lstrip("-")
    descending = sort.startswith("-")

    def value(row: Row):
        if key == "name":
            return row.name.lower()
        if key == "size":
            return order.get(row.size_class, 99)
        if key in ("params", "layers"):
            return getattr(row, key)
        if key == "avg":
            return row.avg.value
        if key == "execute_ms":
            return (row.latency or {}).get("execute_ms")
        return row.cells[key].value

    present = [r for r in rows if value(r) is not None]
    missing = [r for r in rows if value(r) is None]
    # Rows without a value go last whichever the direction.
    return sorted(present, key=value, reverse=descending) + missing


@contextmanager
def gc_paused():
    """Building 10,000 rows allocates ~100,000 objects, none of them cyclic garbage; the
    collector's passes over them cost a fifth of the page (measured), so skip them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


LATENCY_FIELDS = ["execute_ms", "decode_tok_s", "peak_rss_mb"]


def paper_table(suite: Suite, table: str) -> tuple[list, list[Row]]:
    """A reported table as printed: same rows, same order, same groups, best marked per group."""
    tasks = list(suite.tasks.all())
    placed = {p.run_id: p for p in PaperRow.objects.filter(run__suite=suite, table=table)}
    runs = EvaluationRun.objects.filter(pk__in=list(placed))
    rows = sorted(load_rows(suite, tasks, runs), key=lambda r: placed[r.run_id].position)
    for row in rows:
        row.group = placed[row.run_id].group
    mark_best(rows, [t.key for t in tasks], by=lambda row: row.group)
    return tasks, rows
