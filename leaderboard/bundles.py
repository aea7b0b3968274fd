"""/models/<slug>/runs/<id>/bundle.zip: a measured run as a bundle that re-runs with stock
lm-eval (evaluator/bundle.py builds it; here the run is read from the database), and
/models/<slug>/runs/<id>/samples.zip: its per-sample records in lm-eval's own format."""

import io
import zipfile

from django.http import Http404, HttpResponse

from evaluator import bundle, datasource, harness, samples_format

from . import exports
from .models import REFERENCE_PRECISION, EvaluationRun, Submission, TaskScore


def record_for(run: EvaluationRun) -> bundle.RunRecord:
    scores, n = {}, {}
    for score in (
        TaskScore.objects.filter(run=run)
        .select_related("task")
        .order_by("task__position", "metric")
    ):
        name = score.task.harness_name
        scores.setdefault(name, {})[score.metric] = (score.value, score.stderr)
        n[name] = score.n
    samples = harness.read_samples_jsonl_gz(run.samples_file.path) if run.samples_file else []
    return bundle.RunRecord(
        provenance=run.provenance or {},
        scores=scores,
        n=n,
        samples=samples,
        model_args=_pinned(run),
    )


def _pinned(run: EvaluationRun) -> str:
    """`pretrained=org/name,revision=<commit>` when the checkpoint came from the Hub."""
    sub = Submission.objects.filter(pk=(run.provenance or {}).get("submission")).first()
    if sub is None or sub.source_kind != Submission.SourceKind.HUB or not sub.repo_id:
        return ""
    return f"pretrained={sub.repo_id}" + (f",revision={sub.commit}" if sub.commit else "")


def _run(slug, run_id, reference: bool = False) -> EvaluationRun:
    runs = EvaluationRun.objects.filter(
        pk=run_id, entry__slug=slug, kind=EvaluationRun.Kind.MEASURED, status="done"
    )
    if reference:
        # reproduce.sh reruns stock lm-eval on the checkpoint as published: a quantized
        # variant's records are not what it would give.
        runs = runs.filter(precision=REFERENCE_PRECISION)
    run = runs.first()
    if run is None:
        raise Http404("no finished measured run with this id for this model")
    return run


def samples_zip(request, slug, run_id):
    """One `samples_<task>_<date>.jsonl` per task, as `lm_eval --log_samples` writes them."""
    run = _run(slug, run_id)
    if not run.samples_file:
        raise Http404("this run kept no per-sample records")
    prov = run.provenance or {}
    suffix = datasource.SUFFIXES.get((prov.get("data") or {}).get("source"), "")
    records = harness.read_samples_jsonl_gz(run.samples_file.path)
    tasks = list(dict.fromkeys(r.get("task") for r in records))
    names = {task: task + suffix for task in tasks}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in samples_format.files(records, names, prov.get("started_at")).items():
            zf.writestr(name, content)
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{slug}-run-{run.pk}-samples.zip"'
    return response


def bundle_zip(request, slug, run_id):
    run = _run(slug, run_id, reference=True)
    try:
        content = bundle.build(record_for(run))
    except bundle.BundleError as exc:
        return exports.json_error(f"cannot bundle run {run.pk}: {exc}", status=409)
    response = HttpResponse(content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{slug}-run-{run.pk}-bundle.zip"'
    return response
