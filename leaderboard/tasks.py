"""Celery tasks: thin wrappers that take ids and call the pipeline (the only Django ↔
evaluator bridge). State lives in the database; messages only say "look at row N"."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import latency, pipeline
from .models import DeviceProfile, Submission

log = logging.getLogger(__name__)
S = Submission.Status


@shared_task(bind=True, acks_late=True, max_retries=3)
def evaluate_submission(self, submission_id: int) -> str:
    try:
        return pipeline.run(submission_id, task_id=self.request.id or "")
    except pipeline.Transient as exc:
        # The submission is pending again; a network hiccup gets a later try.
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


def schedule_probes(submission_id: int) -> list[str]:
    """Queue a latency probe on every active measured device profile; returns their slugs."""
    sub = Submission.objects.get(pk=submission_id)
    profiles = list(DeviceProfile.objects.filter(active=True, reported=False))
    for profile in profiles:
        transaction.on_commit(
            lambda slug=profile.slug, queue=profile.queue: probe_latency.apply_async(
                (sub.entry_id, slug, submission_id), queue=queue
            )
        )
    return [p.slug for p in profiles]


@shared_task(bind=True, acks_late=True)
def probe_latency(self, entry_id: int, profile_slug: str, submission_id: int | None = None):
    return latency.run_probe(entry_id, profile_slug, submission_id)


@shared_task
def watchdog() -> dict:
    """Re-queue what a dead worker or a lost broker message left behind (DESIGN §3)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.HEARTBEAT_STALE_S)
    counts = {"requeued": 0, "failed": 0, "resent": 0, "probes": 0, "probes_given_up": 0}
    running = Submission.objects.filter(status__in=[S.FETCHING, S.EVALUATING], heartbeat__lt=stale)
    for sub in running:
        if sub.attempts >= settings.MAX_ATTEMPTS:
            done = Submission.objects.filter(
                pk=sub.pk, status=sub.status, heartbeat__lt=stale
            ).update(
                status=S.FAILED,
                finished=now,
                error=f"gave up after {sub.attempts} attempts: the worker stopped responding",
            )
            counts["failed"] += done
            continue
        done = Submission.objects.filter(pk=sub.pk, status=sub.status, heartbeat__lt=stale).update(
            status=S.PENDING, enqueued=now, error="the worker stopped responding; queued again"
        )
        if done:
            pipeline.send_for_evaluation(sub.pk)
            counts["requeued"] += 1
    lost = now - timedelta(seconds=settings.REQUEUE_PENDING_AFTER_S)
    for pk, attempts, error in Submission.objects.filter(
        status=S.PENDING, enqueued__lt=lost
    ).values_list("pk", "attempts", "error"):
        if attempts >= settings.MAX_ATTEMPTS:
            counts["failed"] += Submission.objects.filter(pk=pk, status=S.PENDING).update(
                status=S.FAILED, finished=now, error=f"gave up after {attempts} attempts: {error}"
            )
        elif Submission.objects.filter(pk=pk, status=S.PENDING, enqueued__lt=lost).update(
            enqueued=now
        ):
            pipeline.send_for_evaluation(pk)
            counts["resent"] += 1
    for sub in Submission.objects.filter(status=S.PROBING, heartbeat__lt=stale):
        if not Submission.objects.filter(pk=sub.pk, status=S.PROBING, heartbeat__lt=stale).update(
            heartbeat=now, probe_resends=F("probe_resends") + 1
        ):
            continue
        live = DeviceProfile.objects.filter(slug__in=sub.probes_pending, active=True)
        if sub.probe_resends >= settings.MAX_ATTEMPTS or not live.exists():
            # No latency worker answered: the evaluation stands; say which probes are missing.
            for slug in sub.probes_pending:
                latency.finish_probe(
                    sub.pk,
                    slug,
                    f"latency probe on {slug} got no answer "
                    f"(is a worker consuming latency.{slug}?)",
                )
            counts["probes_given_up"] += 1
            continue
        for profile in live:
            probe_latency.apply_async((sub.entry_id, profile.slug, sub.pk), queue=profile.queue)
            counts["probes"] += 1
    if any(counts.values()):
        log.warning("watchdog: %s", counts)
    return counts
