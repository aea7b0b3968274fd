"""The paper, reproduced: reported rows beside measured runs of the same checkpoint.

A reported entry with a `hub_id` (our mapping: paper_hub_ids.csv, and the MobileLLM-R1
table's column) is paired with the latest measured full-benchmark run of that Hugging Face
repo (an entry whose source is the repo, or the reported entry itself). Per task: both
values and measured − reported with its 95 % CI and p-value, unpaired (the paper has no
per-document record; its stderr is binomial on the task's full size); the average from the
tasks'. For an average-only row (R1), the average alone, the reported one taken as exact
(no standard error can be derived for it), which the page says.
"""

from __future__ import annotations

from django.db.models import Q

from . import compare, stats
from .models import REFERENCE_PRECISION, Entry, EvaluationRun
from .units import percent, rounded

AVG_ONLY = (
    "reported average taken as exact (no per-task values, no stderr): z on the measured stderr"
)


def _measured_for(hub_id: str, entry: Entry) -> EvaluationRun | None:
    return (
        EvaluationRun.objects.filter(
            Q(entry__source_url__iexact=hub_id) | Q(entry=entry),
            kind=EvaluationRun.Kind.MEASURED,
            benchmark=EvaluationRun.Benchmark.FULL,
            status=EvaluationRun.Status.DONE,
            precision=REFERENCE_PRECISION,  # the paper's row is compared with the reference
        )
        .select_related("entry")
        .order_by("-created")
        .first()
    )


def _diff_json(diff: stats.Diff | None) -> dict:
    if diff is None:
        return {"delta": None, "ci95": None, "p_value": None, "method": None}
    return {
        "delta": rounded(percent(diff.delta)),
        "ci95": [rounded(percent(x)) for x in diff.ci95],
        "p_value": float(f"{diff.p_value:.4g}"),
        "method": diff.method,
    }


def paper_entry_of(entry: Entry) -> Entry | None:
    """The reported entry a model page compares with: itself when mapped to a repo, else the
    one whose repo this measured entry's checkpoint is."""
    if entry.hub_id:
        return entry
    if not entry.source_url:
        return None
    return Entry.objects.filter(hub_id__iexact=entry.source_url).exclude(hub_id="").first()


def pair_for(entry: Entry, suite, reported: EvaluationRun | None = None) -> dict | None:
    """The measured-vs-reported comparison of one reported entry, or None without one."""
    if not entry.hub_id:
        return None
    reported = reported or entry.runs.filter(kind="reported", suite=suite).first()
    measured = _measured_for(entry.hub_id, entry)
    if reported is None or measured is None:
        return None
    sides = [compare.Side(measured), compare.Side(reported)]
    for side in sides:
        for score in side.run.scores.select_related("task"):
            side.scores.setdefault(score.task.key, {})[score.metric] = score
    tasks, diffs = [], []
    for task in suite.tasks.all():
        m = sides[0].value(task.key, task.headline_metric)
        r = sides[1].value(task.key, task.headline_metric)
        diff = stats.unpaired_diff(m[0], m[1], r[0], r[1]) if m and r else None
        diffs.append(diff)
        tasks.append(
            {
                "task": task.key,
                "label": task.label,
                "metric": task.headline_metric,
                "measured": _value(m),
                "reported": _value(r),
                **_diff_json(diff),
            }
        )
    if all(diffs):
        avg_diff = stats.mean_diff(diffs)
    elif not any(t["reported"]["value"] is not None for t in tasks) and reported.avg is not None:
        avg_diff = _avg_only(sides[0], suite, reported.avg)
    else:
        avg_diff = None
    return {
        "model": entry.name,
        "slug": entry.slug,
        "hub_id": entry.hub_id,
        "reported": {
            "run_id": reported.pk,
            "source": reported.citation,
            "avg": rounded(percent(reported.avg)),
        },  # fmt: skip
        "measured": {
            "run_id": measured.pk,
            "slug": measured.entry.slug,
            "source": measured.provenance_label,
            "avg": rounded(percent(measured.avg)),
        },  # fmt: skip
        "tasks": tasks,
        "avg": _diff_json(avg_diff),
        "avg_method": (AVG_ONLY if avg_diff and not all(diffs) else avg_diff and avg_diff.method),
    }


def _value(triple) -> dict:
    if triple is None:
        return {"value": None, "stderr": None, "n": None}
    value, stderr, n = triple
    return {"value": rounded(percent(value)), "stderr": rounded(percent(stderr)), "n": n}


def _avg_only(measured: compare.Side, suite, reported_avg: float) -> stats.Diff | None:
    triples = [measured.value(t.key, t.headline_metric) for t in suite.tasks.all()]
    if not all(triples):
        return None
    mean = sum(v for v, _, _ in triples) / len(triples)
    se = stats.mean_stderr([s for _, s, _ in triples])
    return stats.unpaired_diff(mean, se, reported_avg, 0.0)


def all_pairs(suite) -> list[dict]:
    """Every reported entry with a mapped repo and a measured run of it."""
    out = []
    for entry in (
        Entry.objects.filter(runs__kind="reported", runs__suite=suite)
        .exclude(hub_id="")
        .distinct()
        .order_by("name")
    ):
        pair = pair_for(entry, suite)
        if pair is not None:
            out.append(pair)
    return out
