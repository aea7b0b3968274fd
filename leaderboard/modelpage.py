"""One model: the data behind /models/<slug>/ and /models/<slug>.json (one function, two
renderers). Accuracies are in percent here, as everywhere the site shows or serves them."""

from __future__ import annotations

from .models import REFERENCE_PRECISION, EvaluationRun, LatencyResult, TaskScore
from .provenance import data_rows, provenance_rows
from .quantization import model_variants
from .spread import decode_spread
from .units import percent, rounded

LATENCY_KEYS = [
    "load_ms",
    "init_ms",
    "execute_ms",
    "first_forward_ms",
    "prefill_ms",
    "prefill_tokens",
    "decode_ms_p50",
    "decode_ms_p90",
    "decode_ms_min",
    "decode_n",
    "decode_cv",
    "decode_rel_ci",
    "decode_stable",
    "decode_tok_s",
    "peak_rss_mb",
    "file_size_mb",
    "roofline_frac",
]


def model_data(entry) -> dict:
    """Everything the model page shows, as plain values (a constant number of queries)."""
    runs = list(
        entry.runs.select_related("suite", "entry")
        .prefetch_related("paper_rows")
        .order_by("-kind", "created")
    )
    scores: dict[int, list] = {}
    for score in (
        TaskScore.objects.filter(run__entry=entry)
        .select_related("task")
        .order_by("task__position", "metric")
    ):
        scores.setdefault(score.run_id, []).append(score)
    # The reference's latency; each variant's is in the ladder (quantization.model_variants).
    latency = LatencyResult.objects.filter(entry=entry, precision=REFERENCE_PRECISION)
    latency = latency.select_related("profile")
    return {
        "model": entry.name,
        "slug": entry.slug,
        "params": entry.params,
        "params_label": entry.params_display,
        "params_non_embedding": entry.params_non_embedding,
        "layers": entry.layers,
        "architecture": entry.architecture,
        "size_class": entry.size_class,
        "source_url": entry.source_url,
        "revision": entry.revision,
        "content_sha256": entry.content_sha256,
        "notes": entry.notes,
        "hub_id": entry.hub_id,
        "contamination": {"tasks": entry.contamination_tasks, "source": entry.contamination_source}
        if entry.contamination
        else None,
        "runs": [_run(run, scores.get(run.pk, [])) for run in runs],
        "latency": [_latency(r) for r in latency],
        # The quantization ladder: the reference and each precision against it.
        "variants": model_variants(entry),
    }


def _run(run: EvaluationRun, scores: list) -> dict:
    reported = run.kind == EvaluationRun.Kind.REPORTED
    return {
        "id": run.pk,
        "suite": run.suite.slug,
        "suite_name": run.suite.name,
        "provenance": run.kind,
        "source": run.citation if reported else run.provenance_label,
        "benchmark": run.benchmark,
        "benchmark_label": run.get_benchmark_display(),
        "ranked": run.ranked,
        "status": run.status,
        "precision": run.precision,
        "avg": rounded(percent(run.avg), 4),
        "paper_tables": [{"table": p.table, "group": p.group} for p in run.paper_rows.all()],
        "details": run.provenance,
        "cost": None if reported else run_cost(run.provenance or {}),
        "provenance_rows": [] if reported else provenance_rows(run.provenance or {}),
        "data_rows": [] if reported else data_rows(run.provenance or {}),
        "samples_url": run.samples_file.url if run.samples_file else None,
        "samples_lm_eval_url": f"/models/{run.entry.slug}/runs/{run.pk}/samples.zip"
        if run.samples_file and not reported
        else None,
        # A bundle needs to know what data the run read (runs stored by the pipeline do).
        "bundle_url": None
        if reported
        or run.status != "done"
        or run.precision != REFERENCE_PRECISION  # reproduce.sh reruns the checkpoint as is
        or not (run.provenance or {}).get("data")
        else f"/models/{run.entry.slug}/runs/{run.pk}/bundle.zip",
        "scores": [
            {
                "task": s.task.key,
                "label": s.task.label,
                "metric": s.metric,
                "headline": s.metric == s.task.headline_metric,
                "value": rounded(percent(s.value), 4),
                "stderr": rounded(percent(s.stderr), 4),
                "n": s.n,
            }
            for s in scores
        ],
    }


def run_cost(provenance: dict) -> dict | None:
    """What an evaluation cost: the engine, the machine and, per task, wall time, requests
    and tokens through the model (recorded by evaluator.harness since the hf-trie engine;
    None for runs that predate it)."""
    per_task = provenance.get("cost")
    if not per_task:
        return None
    engine = provenance.get("engine") or {}
    hardware = provenance.get("hardware") or {}
    total = {k: sum(t.get(k) or 0 for t in per_task.values())
             for k in ("wall_s", "requests", "tokens_forwarded", "tokens_padded")}  # fmt: skip
    return {
        "engine": engine.get("lm_eval_model") or engine.get("name"),
        "engine_setting": engine.get("name"),
        "engine_version": engine.get("version"),
        "hardware": ", ".join(str(v) for v in (hardware.get("cpu"), provenance.get("device")) if v),
        "cores": hardware.get("cores"),
        "wall_s": round(provenance.get("wall_s") or total["wall_s"], 1),
        "minutes": round((provenance.get("wall_s") or total["wall_s"]) / 60, 1),
        **{k: total[k] for k in ("requests", "tokens_forwarded", "tokens_padded")},
        "tasks": [{"task": task, **values} for task, values in per_task.items()],
    }


def _latency(r: LatencyResult) -> dict:
    return {
        "profile": r.profile.slug,
        "profile_name": r.profile.name,
        "provenance": r.kind,
        "source": r.citation,
        **{key: getattr(r, key) for key in LATENCY_KEYS},
        # Measured while other work ran on the host (evaluator.hostlock.under_load).
        "under_load": r.environment.get("under_load"),
        "spread": decode_spread(r.samples),
        "environment": r.environment,
    }
