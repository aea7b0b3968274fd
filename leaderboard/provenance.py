"""A measured run's provenance (the dict evaluator.harness and pipeline.store record) as the
model page shows it: labelled rows a reader can scan, and the raw dict as a JSON download."""

from __future__ import annotations

import json

from django.http import HttpResponse
from django.shortcuts import get_object_or_404

from .models import EvaluationRun

FEWSHOT_LABEL = {0: "zero-shot"}


def _join(*parts) -> str:
    return ", ".join(str(p) for p in parts if p not in (None, "", {}))


def _short(digest: str | None) -> str:
    return f"{digest[:12]}…" if digest else ""


def _duration(wall_s: float | None) -> str:
    return f"{wall_s / 60:.1f} min ({wall_s:.0f} s)" if wall_s else ""


def _checkpoint(facts: dict) -> str:
    if facts.get("format") != "gguf":
        return ""
    size = facts.get("gguf_bytes") or 0
    return (
        f"GGUF {facts.get('gguf_type', '')} ({size / 1e6:.1f} MB file), "
        "dequantised to float32 to run"
    )


def provenance_rows(p: dict) -> list[tuple[str, str]]:
    """(label, value) pairs for the facts that decide whether two runs are comparable;
    facts the run did not record are left out rather than shown empty."""
    versions = p.get("versions") or {}
    engine = p.get("engine") or {}
    hardware = p.get("hardware") or {}
    data = p.get("data") or {}
    shots = p.get("num_fewshot")
    batch = p.get("batch_size")
    detected = p.get("batch_sizes_detected")
    rows = [
        ("Harness", _join(
            f"lm-eval {p['lm_eval_version']}" if p.get("lm_eval_version") else "",
            FEWSHOT_LABEL.get(shots, f"{shots}-shot" if shots is not None else ""),
            f"first {p['limit']} items per task" if p.get("limit") else "",
        )),
        ("Benchmark data", _join(
            {"hub": "the full benchmarks (Hugging Face Hub)",
             "sample": "the project's sample set"}.get(data.get("source"), data.get("source")),
            p.get("benchmark") and f"benchmark: {p['benchmark']}",
        )),
        ("Libraries", _join(*(f"{k} {v}" for k, v in versions.items() if k != "lm_eval"))),
        ("Engine", _join(
            engine.get("lm_eval_model"),
            engine.get("name") and f"setting {engine['name']}",
            engine.get("version") and f"v{engine['version']}",
            engine.get("forward_tokens") and f"rows of {engine['row_tokens']} tokens, "
            f"{engine['forward_tokens']} tokens a forward",
        )),
        ("Checkpoint", _checkpoint(p.get("checkpoint") or {})),
        ("Precision", _precision(p)),
        # hf-trie batches by tokens (the Engine row); the batch size applies to its fallback.
        ("Batch size", _join(batch, detected and f"detected: {detected}",
                             engine.get("forward_tokens") and "used by the fallback path only")),
        ("Device", p.get("device") or ""),
        ("Hardware", _join(
            hardware.get("cpu"),
            hardware.get("cores") and f"{hardware['cores']} cores",
            hardware.get("platform"),
        )),
        ("Started", p.get("started_at") or ""),
        ("Duration", _duration(p.get("wall_s"))),
        ("Seeds", _join(*(f"{k} {v}" for k, v in (p.get("seeds") or {}).items()))),
        ("Site version", p.get("project_version") or ""),
        ("Submission", f"#{p['submission']}" if p.get("submission") else ""),
    ]  # fmt: skip
    return [(label, value) for label, value in rows if value]


def data_rows(p: dict) -> list[dict]:
    """Per task: exactly which data was read (a file and its hash, or a Hub dataset and its
    fingerprint) and the lm-eval task version."""
    tasks = (p.get("data") or {}).get("tasks") or {}
    versions = p.get("task_versions") or {}
    return [
        {
            "task": task,
            "what": ident.get("file") or _join(ident.get("path"), ident.get("name")),
            "split": ident.get("split") or "",
            "digest": _short(
                ident.get("sha256") or ident.get("revision") or ident.get("fingerprint")
            ),
            "items": ident.get("items"),
            "version": versions.get(task),
        }
        for task, ident in tasks.items()
        if isinstance(ident, dict)
    ]


def provenance_json(request, slug, run_id):
    """The run's full provenance record as a file, for citing or comparing runs."""
    run = get_object_or_404(EvaluationRun, pk=run_id, entry__slug=slug, kind="measured")
    response = HttpResponse(
        json.dumps(run.provenance, indent=2, sort_keys=True), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{slug}-run-{run.pk}-provenance.json"'
    return response


def _precision(p: dict) -> str:
    """The dtype the model ran in, and for a quantized variant its recipe (an int4 model's
    dtype is still float32: only its weights are int4)."""
    quantized = p.get("precision") or {}
    if quantized.get("precision") in (None, "fp32"):
        return p.get("dtype") or ""
    return f"{quantized['precision']}: {quantized.get('scheme', '')}"
