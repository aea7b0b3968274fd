"""The watchdog's rule for pending submissions: a message is sent again only when it is
overdue, not while it waits behind a running evaluation (issue 8, item 10). The process
side (a killed worker, a Redis restart) is in test_faults."""

from datetime import timedelta

import pytest
from django.utils import timezone

from leaderboard import intake, tasks
from leaderboard.models import Submission


@pytest.fixture
def site(settings, tmp_path):
    settings.CHECKPOINT_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.EVAL_DATA = "sample"
    return settings


def submission(name: str, **fields) -> Submission:
    url = f"https://127.0.0.1/{name}.tar.gz"
    sub, _ = intake.create_submission(intake.resolve_source(url), url, name, enqueue=False)
    Submission.objects.filter(pk=sub.pk).update(**fields)
    return Submission.objects.get(pk=sub.pk)


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


@pytest.fixture
def long_run_and_a_waiting_one(db, site):
    """One worker busy with a long evaluation (claimed 2 h ago, beating now), and a
    submission sent 1 h ago that waits behind it."""
    overdue = site.REQUEUE_PENDING_AFTER_S + 3600
    running = submission(
        "running",
        status="evaluating",
        enqueued=ago(overdue + 3600),
        started=ago(overdue + 3590),
        heartbeat=timezone.now(),
        attempts=1,
    )
    waiting = submission("waiting", enqueued=ago(overdue))
    return running, waiting


def test_a_message_queued_behind_a_running_evaluation_is_not_sent_again(
    long_run_and_a_waiting_one,
):
    _, waiting = long_run_and_a_waiting_one
    for _ in range(3):  # tick after tick
        assert tasks.watchdog()["resent"] == 0
    assert Submission.objects.get(pk=waiting.pk).enqueued == waiting.enqueued


def test_it_is_sent_again_once_the_queue_passed_it_by(long_run_and_a_waiting_one, site):
    _, waiting = long_run_and_a_waiting_one
    # A message sent after the waiting one's has been taken by a worker: that one was lost.
    later = waiting.enqueued + timedelta(seconds=60)
    submission("later", status="evaluating", enqueued=later, started=later, heartbeat=ago(0))
    assert tasks.watchdog()["resent"] == 1
    assert tasks.watchdog()["resent"] == 0  # sent just now: not overdue again before its time
    assert Submission.objects.get(pk=waiting.pk).enqueued > ago(5)


def test_it_is_sent_again_once_no_evaluation_runs(long_run_and_a_waiting_one):
    running, waiting = long_run_and_a_waiting_one
    Submission.objects.filter(pk=running.pk).update(status="done")
    assert tasks.watchdog()["resent"] == 1
    assert tasks.watchdog()["resent"] == 0


def test_a_waiting_message_is_not_given_up_on_either(long_run_and_a_waiting_one, site):
    _, waiting = long_run_and_a_waiting_one
    Submission.objects.filter(pk=waiting.pk).update(attempts=site.MAX_ATTEMPTS)
    assert tasks.watchdog()["failed"] == 0
    assert Submission.objects.get(pk=waiting.pk).status == "pending"


def test_a_running_evaluation_whose_worker_died_does_not_hold_the_queue(
    long_run_and_a_waiting_one, site
):
    running, _ = long_run_and_a_waiting_one
    Submission.objects.filter(pk=running.pk).update(heartbeat=ago(site.HEARTBEAT_STALE_S + 5))
    counts = tasks.watchdog()
    assert (counts["requeued"], counts["resent"]) == (1, 1)
