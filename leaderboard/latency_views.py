"""/latency/: Table 7-style tables per device profile, and accuracy against latency."""

from django.shortcuts import render

from . import charts, exports
from .models import REFERENCE_PRECISION, DeviceProfile, EvaluationRun, LatencyResult
from .spread import decode_spread
from .suites import csr_suite

COLUMNS = [
    "model",
    "slug",
    "profile",
    "provenance",
    "source",
    "layers",
    "load_ms",
    "init_ms",
    "execute_ms",
    "first_forward_ms",
    "prefill_ms",
    "prefill_tokens",
    "decode_ms_p50",
    "decode_ms_p90",
    "decode_tok_s",
    "peak_rss_mb",
    "file_size_mb",
    "roofline_frac",
    "avg",
    "avg_benchmark",
    # The spread of the raw decode samples behind execute_ms (leaderboard/spread.py).
    "decode_ms_min",
    "decode_samples",
    "decode_cv",
    "unstable",
    "unstable_why",
]


def best_accuracy(entry_ids) -> dict[int, tuple[float, str]]:
    """Per entry, the average accuracy (%) of its most comparable run: a ranked
    full-benchmark run if there is one, else its latest measured run."""
    runs = (
        EvaluationRun.objects.filter(
            suite=csr_suite(),
            status="done",
            entry_id__in=entry_ids,
            avg__isnull=False,
            precision=REFERENCE_PRECISION,  # the model's accuracy, not a variant's
        )
        .order_by("created")
        .values_list("entry_id", "avg", "benchmark", "ranked", "kind")
    )
    best: dict[int, tuple[float, str, bool]] = {}
    for entry_id, avg, benchmark, ranked, kind in runs:
        if kind == "reported" and not ranked:
            continue  # ablation rows are not this model's accuracy
        current = best.get(entry_id)
        if current is None or ranked or not current[2]:
            best[entry_id] = (avg * 100, benchmark, ranked)
    return {k: (v[0], v[1]) for k, v in best.items()}


def rows_for(profile: DeviceProfile) -> list[dict]:
    results = list(
        LatencyResult.objects.filter(profile=profile, precision=REFERENCE_PRECISION)
        .select_related("entry")
        .order_by("pk")
    )
    accuracy = best_accuracy([r.entry_id for r in results])
    rows = []
    for r in results:
        avg, benchmark = accuracy.get(r.entry_id, (None, ""))
        spread = decode_spread(r.samples)
        rows.append(
            {
                "model": r.entry.name,
                "slug": r.entry.slug,
                "profile": profile.slug,
                "provenance": r.kind,
                "source": r.citation,
                "layers": r.layers_label or (str(r.entry.layers) if r.entry.layers else ""),
                **{f: getattr(r, f) for f in COLUMNS[6:18]},
                "avg": None if avg is None else round(avg, 2),
                "avg_benchmark": benchmark,
                "decode_ms_min": spread["min"],
                "decode_samples": spread["n"],
                "decode_cv": None if spread["cv"] is None else round(spread["cv"], 4),
                "unstable": spread["unstable"],
                "unstable_why": spread["why"],
            }
        )
    return rows


def profiles_with_results():
    return list(
        DeviceProfile.objects.filter(results__isnull=False).distinct().order_by("reported", "name")
    )


def latency(request):
    sections = [(p, rows_for(p)) for p in profiles_with_results()]
    return render(request, "leaderboard/latency.html", {"sections": sections})


def _profile(request):
    slug = request.GET.get("profile", "")
    return DeviceProfile.objects.filter(slug=slug).first()


def latency_json(request):
    profiles = profiles_with_results()
    head = {
        "columns": COLUMNS,
        "profiles": [
            {
                "slug": p.slug,
                "name": p.name,
                "reported": p.reported,
                "runtime": p.runtime,
                "dtype": p.dtype,
                "threads": p.threads,
                "bandwidth_gb_s": p.bandwidth_gb_s,
            }
            for p in profiles
        ],
    }
    return exports.stream_json(head, "rows", (row for p in profiles for row in rows_for(p)))


def latency_csv(request):
    return exports.stream_csv(
        "latency",
        COLUMNS,
        (
            [exports.neutralise(row[c]) for c in COLUMNS]
            for p in profiles_with_results()
            for row in rows_for(p)
        ),
    )


def chart_latency_json(request):
    profile = _profile(request)
    if profile is None:
        return exports.json_error("pass ?profile=<device profile slug>")
    points = [
        {
            "name": r["model"],
            "slug": r["slug"],
            "execute_ms": r["execute_ms"],
            "avg": r["avg"],
            "peak_rss_mb": r["peak_rss_mb"],
            "benchmark": r["avg_benchmark"],
            "provenance": r["provenance"],
            "source": r["source"],
            "decode_ms_p90": r["decode_ms_p90"],
            "decode_samples": r["decode_samples"],
            "decode_cv": r["decode_cv"],
            "unstable": r["unstable"],
        }
        for r in rows_for(profile)
        if r["execute_ms"] is not None and r["avg"] is not None
    ]
    return exports.JsonResponse({"profile": profile.slug, **charts.accuracy_vs_latency(points)})
