"""Every Celery message the site sends, in one place. Messages carry row ids only: the state
is in the database (DESIGN §3), so a lost or repeated message is harmless.

Tasks are addressed by name, so this module does not import leaderboard.tasks (which imports
the modules that send): the task's registered options still apply."""

from __future__ import annotations

from django.conf import settings

from config.celery import app

EVALUATE = "leaderboard.tasks.evaluate_submission"
PROBE = "leaderboard.tasks.probe_latency"
REBUILD_BOARD = "leaderboard.tasks.rebuild_board"


def send_for_evaluation(pk: int, countdown: float | None = None) -> None:
    """Submission pk to the eval queue, with the time limits of these settings (the limits
    travel in the message: whoever enqueues decides them); countdown delays a retry."""
    app.signature(EVALUATE, args=(pk,)).apply_async(
        countdown=countdown,
        soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
        time_limit=settings.CELERY_TASK_TIME_LIMIT,
    )


def send_probe(probe_id: int, queue: str) -> None:
    """A latency probe to its device profile's own queue (latency.<profile>)."""
    app.signature(PROBE, args=(probe_id,)).apply_async(queue=queue)


def send_board_rebuild(countdown: float) -> None:
    """Rebuild the stale leaderboards after countdown seconds (changes meanwhile share it)."""
    app.signature(REBUILD_BOARD).apply_async(countdown=countdown, queue="default")
