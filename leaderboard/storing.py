"""Writing one measured run: the row, every score and the per-sample records, in the
caller's transaction. Shared by the reference run (pipeline) and its variants (variants)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone

from evaluator import harness, machine

from .models import Entry, EvaluationRun, TaskScore
from .suites import csr_suite


def write_run(
    entry: Entry,
    result: harness.EvalResult,
    submission: int,
    checkpoint: dict | None = None,
    **fields,
) -> EvaluationRun:
    """A done run of entry with result's scores, at the precision the harness applied (with
    its weights measured there); fields set the rest (the reference of a variant).
    checkpoint: the format it came in (pipeline.checkpoint_facts), kept in the provenance. A
    GGUF file is its own rung of a ladder: its precision is the file's quantisation type
    (e.g. Q4_1), never ranked among fp32 references; its packed size is the file's."""
    suite = csr_suite()
    tasks = {t.harness_name: t for t in suite.tasks.all()}
    provenance = {
        **result.provenance,
        "lm_eval_version": result.provenance.get("versions", {}).get("lm_eval"),
        "project_version": settings.PROJECT_VERSION,
        "hardware": machine.describe(),
        "submission": submission,
        **({"checkpoint": checkpoint} if checkpoint else {}),
    }
    benchmark = provenance.get("benchmark", "sample")
    quantized = provenance.get("precision") or {}
    if quantized:
        fields = {
            "precision": quantized["precision"],
            "scheme": quantized["scheme"],
            "weights_bytes": quantized["weights_bytes"],
            "weights_bytes_packed": quantized["weights_bytes_packed"],
            **fields,
        }
    if (checkpoint or {}).get("format") == "gguf":
        fields = {
            **fields,
            "precision": checkpoint["gguf_type"],
            "scheme": f"GGUF {checkpoint['gguf_type']}, dequantised to float32 and run so",
            "weights_bytes_packed": checkpoint["gguf_bytes"],
        }
    run = EvaluationRun.objects.create(
        entry=entry,
        suite=suite,
        kind=EvaluationRun.Kind.MEASURED,
        benchmark=benchmark,
        ranked=benchmark == EvaluationRun.Benchmark.FULL,
        provenance=provenance,
        status=EvaluationRun.Status.DONE,
        finished=timezone.now(),
        **fields,
    )
    scores, headline = [], []
    for task_result in result.tasks:
        task = tasks[task_result.task]
        for metric, (value, stderr) in task_result.metrics.items():
            scores.append(
                TaskScore(
                    run=run, task=task, metric=metric, value=value, stderr=stderr,
                    n=task_result.n,
                )
            )  # fmt: skip
            if metric == task.headline_metric:
                headline.append(value)
    TaskScore.objects.bulk_create(scores)
    if len(headline) == len(tasks):
        run.avg = sum(headline) / len(headline)
    run.samples_file.save(f"run-{run.pk}-samples.jsonl.gz", _samples_file(result), save=False)
    run.save(update_fields=["avg", "samples_file"])
    return run


def _samples_file(result: harness.EvalResult) -> ContentFile:
    with tempfile.NamedTemporaryFile(suffix=".jsonl.gz") as tmp:
        harness.write_samples_jsonl_gz(result, tmp.name)
        return ContentFile(Path(tmp.name).read_bytes())
