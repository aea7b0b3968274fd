"""Celery tasks: thin wrappers that take ids and call the modules that do the work (the
Django ↔ evaluator bridge is pipeline and latency). Messages are sent by queueing."""

from __future__ import annotations

from celery import shared_task

from . import board, checkpoints, latency, pipeline, runstate, throttle


@shared_task(bind=True, acks_late=True)
def evaluate_submission(self, submission_id: int) -> str:
    # A transient failure leaves the submission pending and sends it again (pipeline).
    # timelimit is (hard, soft) as the message carried them (queueing sets both).
    soft = (self.request.timelimit or (None, None))[1]
    return pipeline.run(submission_id, task_id=self.request.id or "", soft_limit_s=soft)


@shared_task(acks_late=True)
def probe_latency(probe_id: int) -> str:
    return latency.run_probe(probe_id)


@shared_task
def watchdog() -> dict:
    counts = runstate.watchdog()
    counts["throttles_expired"] = throttle.expire()
    counts["checkpoints_dropped"] = checkpoints.prune()
    return counts


@shared_task(acks_late=True)
def rebuild_board() -> int:
    # Idempotent: a board already fresh is skipped, so a repeated message costs one query.
    return board.rebuild_stale()
