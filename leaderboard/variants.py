"""The quantization ladder of one submission: after its fp32 run (the reference) is stored,
each other precision it asked for is evaluated on the same checkpoint, engine, tasks and
data, and stored as a run of its own that points at the reference.

A variant the recipe cannot make (evaluator.quant.QuantRefused) is stored as `refused` with
the reason, never as a full-precision run under a quantized name; one that fails otherwise
is stored as `failed`, so that the reference's scores still stand. A reference run has at
most one variant per precision: a redelivered message, or a second submission of the same
checkpoint, evaluates only what is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from evaluator import harness, hostlock, quant

from . import quantization, runstate
from .models import REFERENCE_PRECISION, EvaluationRun, Submission
from .redaction import public
from .storing import write_run

log = logging.getLogger(__name__)


def precisions_of(sub: Submission) -> list[str]:
    """The ladder the submission asked for, the reference first (older rows: fp32 only)."""
    return quant.parse_precisions(sub.precisions or [REFERENCE_PRECISION])


def missing(sub: Submission, reference: EvaluationRun | None) -> list[str]:
    """The variants the submission asked for that the reference run has none of yet."""
    if reference is None or reference.precision != REFERENCE_PRECISION:
        return []  # a GGUF file's run: its ladder is not this dequantised copy's
    have = set(reference.variants.values_list("precision", flat=True))
    return [p for p in precisions_of(sub) if p != REFERENCE_PRECISION and p not in have]


def covers(reference: EvaluationRun | None, precisions: list[str]) -> bool:
    """Whether a reference run has (or was) every precision asked for."""
    if reference is None:
        return False
    have = {REFERENCE_PRECISION, *reference.variants.values_list("precision", flat=True)}
    return set(precisions) <= have


def scaled(progress, step: int, steps: int, precision: str):
    """Progress of one precision's tasks as a stretch of the whole ladder's, so the
    submission's page counts task i of (tasks × precisions) and only moves forward."""

    def report(index: int, count: int, task: str, fraction: float) -> None:
        label = task if precision == REFERENCE_PRECISION else f"{task}, {precision}"
        progress(step * count + index, count * steps, label, fraction)

    return report


def evaluate_missing(sub: Submission, reference: EvaluationRun, model_dir: Path, beat) -> None:
    """Evaluate and store each variant the reference run lacks (see the module docstring)."""
    ladder = precisions_of(sub)
    for precision in missing(sub, reference):
        try:
            with hostlock.hold(settings.HOST_LOCK_FILE, tick=lambda: _stop_if_asked(beat)):
                result = harness.evaluate(
                    model_dir,
                    tasks=sub.tasks,
                    data=sub.data,
                    limit=sub.limit,
                    device=settings.EVAL_DEVICE,
                    batch_size=settings.EVAL_BATCH_SIZE,
                    progress=scaled(
                        beat.evaluation, ladder.index(precision), len(ladder), precision
                    ),
                    should_stop=beat.should_stop,
                    engine=settings.EVAL_ENGINE,
                    precision=precision,
                )
        except quant.QuantRefused as exc:
            log.info("submission %s: %s refused: %s", sub.pk, precision, exc)
            _store_ended(reference, precision, EvaluationRun.Status.REFUSED, str(exc))
            continue
        except Exception as exc:
            if _stops_the_run(exc):
                raise
            log.exception("submission %s: the %s variant failed", sub.pk, precision)
            reason = public(f"{type(exc).__name__}: {exc}")[:2000]
            _store_ended(reference, precision, EvaluationRun.Status.FAILED, reason)
            continue
        variant = runstate.with_db_retry(store_variant, sub, reference, result)
        if variant is not None:
            try:
                runstate.with_db_retry(quantization.store_delta, variant)
            except Exception:  # the first page that shows it computes it instead
                log.exception("submission %s: the %s variant's delta", sub.pk, precision)


def _stop_if_asked(beat) -> None:
    if beat.should_stop():
        raise harness.Cancelled()


def _stops_the_run(exc: BaseException) -> bool:
    """A cancellation or the time limit ends the submission, not only this variant."""
    from celery.exceptions import SoftTimeLimitExceeded

    return isinstance(exc, (harness.Cancelled, SoftTimeLimitExceeded))


def store_variant(
    sub: Submission, reference: EvaluationRun, result: harness.EvalResult
) -> EvaluationRun | None:
    """The variant's run with every score, once per (reference, precision)."""
    try:
        with transaction.atomic():
            return write_run(reference.entry, result, submission=sub.pk, reference=reference)
    except IntegrityError:  # another worker stored it first: theirs stands
        return None


def _store_ended(reference: EvaluationRun, precision: str, status: str, reason: str) -> None:
    fields = {
        "entry": reference.entry,
        "suite": reference.suite,
        "kind": EvaluationRun.Kind.MEASURED,
        "benchmark": reference.benchmark,
        "ranked": False,
        "status": status,
        "scheme": quant.SCHEMES.get(precision, ""),
        "reason": reason,
        "finished": timezone.now(),
    }
    runstate.with_db_retry(
        EvaluationRun.objects.get_or_create,
        reference=reference,
        precision=precision,
        defaults=fields,
    )
