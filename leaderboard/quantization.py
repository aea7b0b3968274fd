"""The quantization ladder as pages show it: per model (/models/<slug>/ and its JSON's
`variants`) and across models (/quantization/ and its twins).

Each variant is compared with its fp32 reference document by document, with the statistics
of /compare/ (leaderboard/compare.py and stats.py: one place for them): per task the paired
difference, its bootstrap CI and McNemar p-value; for the average, the mean of the tasks'
differences. Accuracies and differences in percent / percentage points, sizes in MB.
"""

from __future__ import annotations

from collections import defaultdict

from evaluator import quant

from . import compare, stats
from .models import REFERENCE_PRECISION, EvaluationRun, LatencyResult, TaskScore
from .units import percent, rounded

MB = 1e6
LADDER_ORDER = {p: i for i, p in enumerate(quant.RECIPES)}
LATENCY_KEYS = ["execute_ms", "prefill_ms", "decode_tok_s", "peak_rss_mb", "file_size_mb"]


def references(entry_ids=None):
    """Measured fp32 runs that have variants, with them (a constant number of queries)."""
    runs = EvaluationRun.objects.filter(
        kind=EvaluationRun.Kind.MEASURED,
        precision=REFERENCE_PRECISION,
        status=EvaluationRun.Status.DONE,
        variants__isnull=False,
    ).distinct()
    if entry_ids is not None:
        runs = runs.filter(entry_id__in=entry_ids)
    return runs.select_related("entry", "suite").prefetch_related("variants").order_by("created")


def ladder(reference: EvaluationRun, latency: dict | None = None) -> list[dict]:
    """The reference and its variants, each with scores, delta_vs_reference and latency
    (latency: {precision: {profile: figures}}, from latency_by_precision)."""
    rungs = sorted(
        [reference, *reference.variants.all()], key=lambda r: LADDER_ORDER.get(r.precision, 99)
    )
    sides = {run.pk: compare.Side(run) for run in rungs}
    tasks = list(reference.suite.tasks.all())
    for score in TaskScore.objects.filter(run__in=rungs).select_related("task"):
        sides[score.run_id].scores.setdefault(score.task.key, {})[score.metric] = score
    base = sides[reference.pk]
    latency = latency or {}
    out = []
    for run in rungs:
        side = sides[run.pk]
        out.append(
            {
                "precision": run.precision,
                "scheme": run.scheme or quant.SCHEMES.get(run.precision, ""),
                "status": run.status,
                "reason": run.reason or None,
                "run_id": run.pk,
                "weights_bytes": run.weights_bytes,
                "weights_bytes_packed": run.weights_bytes_packed,
                "avg": rounded(percent(run.avg), 4),
                "scores": _scores(side, tasks),
                "delta_vs_reference": None if run is reference else delta(side, base, tasks),
                "latency": latency.get(run.precision, {}),
            }
        )
    return out


def _scores(side: compare.Side, tasks) -> dict:
    out = {}
    for task in tasks:
        triple = side.value(task.key, task.headline_metric)
        value, stderr, n = triple if triple else (None, None, None)
        out[task.key] = {"value": rounded(percent(value)), "stderr": rounded(percent(stderr)),
                         "n": n, "metric": task.headline_metric}  # fmt: skip
    return out


def delta(side: compare.Side, base: compare.Side, tasks) -> dict | None:
    """The variant's stored delta_vs_reference; the first time, computed and kept, so that
    per-sample files are read once per variant, not per request."""
    run = side.run
    if run.delta_vs_reference is None:
        computed = _delta(side, base, tasks)
        if computed is None:
            return None
        run.delta_vs_reference = computed
        EvaluationRun.objects.filter(pk=run.pk).update(delta_vs_reference=computed)
    return run.delta_vs_reference


def store_delta(variant: EvaluationRun) -> None:
    """Compute a newly stored variant's delta now, while its worker is at hand."""
    if variant.reference_id is not None:
        ladder(variant.reference)


def _delta(side: compare.Side, base: compare.Side, tasks) -> dict | None:
    """Variant − reference per task (paired when both have per-sample records on the same
    data) and for the average; None for a variant without scores (refused, failed)."""
    if side.run.status != EvaluationRun.Status.DONE:
        return None
    per_task, diffs = {}, []
    for task in tasks:
        metric = task.headline_metric
        a, b = side.value(task.key, metric), base.value(task.key, metric)
        diff = None
        if a and b:
            if compare.pairable(side, base, task.key):
                diff, _ = compare.paired_task(side, base, task.key, metric)
            else:
                diff = stats.unpaired_diff(a[0], a[1], b[0], b[1])
        diffs.append(diff)
        per_task[task.key] = _diff_json(diff)
    whole = all(d is not None for d in diffs) and diffs
    return {"avg": _diff_json(stats.mean_diff(diffs) if whole else None), "tasks": per_task}


def _diff_json(diff: stats.Diff | None) -> dict:
    shown = compare.diff_json("", "", diff)
    return {k: shown[k] for k in ("delta", "ci95", "p_value", "paired", "n_paired")}


def latency_by_precision(entry_ids) -> dict[int, dict[str, dict[str, dict]]]:
    """{entry_id: {precision: {profile slug: figures}}} for the measured latency results."""
    out: dict[int, dict] = defaultdict(lambda: defaultdict(dict))
    for r in LatencyResult.objects.filter(entry_id__in=entry_ids, kind="measured").select_related(
        "profile"
    ):
        figures = {key: getattr(r, key) for key in LATENCY_KEYS}
        out[r.entry_id][r.precision][r.profile.slug] = {
            "profile_name": r.profile.name,
            **figures,
            "ran_as": ran_as(r),
        }
        # Variants this profile's runtime could not run (leaderboard.latency.probe_variants).
        for precision, reason in (r.environment.get("variants_not_measured") or {}).items():
            out[r.entry_id][precision].setdefault(
                r.profile.slug,
                {"profile_name": r.profile.name, **dict.fromkeys(LATENCY_KEYS), "why": reason},
            )
    return out


def ran_as(result: LatencyResult) -> str | None:
    """The scheme a rung was measured in when the runtime could not run the one scored: bf16
    is lowered to ExecuTorch in float16 (evaluator.quant.EXECUTORCH_NO_BF16); else None."""
    exported = (result.environment.get("export") or {}).get("precision") or {}
    scheme = exported.get("scheme") or ""
    return scheme if result.precision == "bf16" and scheme.startswith("float16") else None


def model_variants(entry) -> list[dict]:
    """The ladder of the entry's latest measured reference run that has one; [] if none."""
    reference = references([entry.pk]).last()
    if reference is None:
        return []
    return ladder(reference, latency_by_precision([entry.pk]).get(entry.pk))


CSV_HEADER = [
    "model", "slug", "precision", "scheme", "status", "reason", "benchmark", "avg",
    "reference_avg", "delta", "ci95_low", "ci95_high", "p_value", "paired",
    "weights_mb", "weights_packed_mb", "size_reduction", "profile", "execute_ms",
    "reference_execute_ms", "speedup", "peak_rss_mb", "latency_ran_as",
]  # fmt: skip


def across_models() -> list[dict]:
    """One row per model, variant and device profile (one without a profile when none was
    probed): accuracy drop, size reduction and speed-up against the model's reference."""
    refs = list(references())
    latency = latency_by_precision([r.entry_id for r in refs])
    rows = []
    for ref in refs:
        rungs = ladder(ref, latency.get(ref.entry_id))
        base = rungs[0]
        for rung in rungs[1:]:
            delta = (rung["delta_vs_reference"] or {}).get("avg") or {}
            ci = delta.get("ci95") or [None, None]
            common = {
                "model": ref.entry.name,
                "slug": ref.entry.slug,
                "precision": rung["precision"],
                "scheme": rung["scheme"],
                "status": rung["status"],
                "reason": rung["reason"],
                "benchmark": ref.benchmark,
                "avg": rung["avg"],
                "reference_avg": base["avg"],
                "delta": delta.get("delta"),
                "ci95_low": ci[0],
                "ci95_high": ci[1],
                "p_value": delta.get("p_value"),
                "paired": delta.get("paired"),
                "weights_mb": _mb(rung["weights_bytes"]),
                "weights_packed_mb": _mb(rung["weights_bytes_packed"]),
                "size_reduction": _ratio(base["weights_bytes"], rung["weights_bytes_packed"]),
            }
            profiles = sorted(set(rung["latency"]) | set(base["latency"])) or [None]
            for profile in profiles:
                mine = rung["latency"].get(profile) or {}
                theirs = base["latency"].get(profile) or {}
                rows.append(
                    {
                        **common,
                        "profile": profile,
                        "execute_ms": mine.get("execute_ms"),
                        "reference_execute_ms": theirs.get("execute_ms"),
                        "speedup": _ratio(theirs.get("execute_ms"), mine.get("execute_ms")),
                        "peak_rss_mb": mine.get("peak_rss_mb"),
                        "latency_ran_as": mine.get("ran_as"),
                    }
                )
    return rows


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / MB, 3)


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a and b else None


def ladder_table(variants: list[dict], tasks) -> dict:
    """The model page's ladder as rows of cells in the suite's task order (templates only
    loop): per precision its average and per-task score, each with its Δ vs fp32."""
    rows = []
    for rung in variants:
        delta = rung["delta_vs_reference"] or {}
        cells = [
            {"score": rung["scores"].get(t.key), "delta": (delta.get("tasks") or {}).get(t.key)}
            for t in tasks
        ]
        latency = [{"profile": slug, **figures} for slug, figures in rung["latency"].items()]
        rows.append(
            {
                **rung,
                "avg_delta": delta.get("avg"),
                "cells": cells,
                "weights_mb": _mb(rung["weights_bytes"]),
                "weights_packed_mb": _mb(rung["weights_bytes_packed"]),
                "latency_rows": latency,
            }
        )
    return {"tasks": [{"key": t.key, "label": t.label} for t in tasks], "rows": rows}
