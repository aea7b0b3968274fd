"""DESIGN §3 as evidence: worker, broker and database faults with real processes; nothing
lost, nothing written twice or half."""

import json
import os
import signal
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from leaderboard import intake, runstate
from leaderboard.models import DeviceProfile, EvaluationRun, Submission, TaskScore
from tests.conftest import need
from tests.faults import CuttableProxy, PrivateRedis, run_watchdog
from tests.workers import celery_worker, wait_for, worker_database_url, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def site(settings, tmp_path, transactional_db, served):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}"]  # that server only
    settings.EVAL_DATA = "sample"
    DeviceProfile.objects.filter(reported=False).update(active=False)
    return settings


@pytest.fixture(scope="module", autouse=True)
def slow_archive(served, tmp_path_factory):
    """A model big enough that an evaluation lasts many seconds even on a quiet machine:
    the faults below must strike while it runs (the 2-layer tiny one is done in ~2 s)."""
    import tarfile

    from evaluator.tinymodel import TinySpec, build_tiny_model

    spec = TinySpec(layers=8, hidden=320, heads=5, kv_heads=1, ffn=896, seed=1)
    model = build_tiny_model(tmp_path_factory.mktemp("slow") / "slow-llama", spec)
    with tarfile.open(served.root / "slow.tar.gz", "w:gz") as tar:
        tar.add(model, arcname="slow-llama")


def submit(served, name="Slow", path="slow.tar.gz", enqueue=True) -> Submission:
    url = f"{served.url}/{path}"
    sub, created = intake.create_submission(intake.resolve_source(url), url, name, enqueue=enqueue)
    assert created
    return sub


def status(sub) -> str:
    return Submission.objects.get(pk=sub.pk).status


def evaluating_mid_way(sub) -> bool:
    s = Submission.objects.get(pk=sub.pk)
    assert s.status not in Submission.ENDED, f"the run ended ({s.status}) before the fault"
    return s.status == "evaluating" and s.task_index >= 1


def one_set_of_scores(sub) -> None:
    sub.refresh_from_db()
    assert sub.status == "done", (sub.error, sub.log_tail[-2000:])
    runs = EvaluationRun.objects.filter(entry=sub.entry)
    assert runs.count() == 1
    assert TaskScore.objects.filter(run__entry=sub.entry).count() == 13


def test_a_worker_killed_mid_evaluation_is_replaced_and_scores_are_written_once(
    site, redis_url, served, tmp_path
):
    sub = submit(served)
    with celery_worker(redis_url, tmp_path, "eval", name="doomed") as doomed:
        wait_for(lambda: evaluating_mid_way(sub), 240, "the evaluation to be under way", doomed)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait()
    assert status(sub) == "evaluating"  # what a dead worker leaves behind
    env = worker_env(redis_url, tmp_path, HEARTBEAT_STALE_S="3")
    time.sleep(4)
    assert "'requeued': 1" in run_watchdog(env)
    with celery_worker(redis_url, tmp_path, "eval", name="heir") as heir:
        wait_for(lambda: status(sub) in Submission.ENDED, 300, "the retry to finish", heir)
    one_set_of_scores(sub)
    assert Submission.objects.get(pk=sub.pk).attempts == 2


def test_submissions_survive_a_redis_restart(site, served, tmp_path):
    need(PrivateRedis.available(), "no redis-server binary")
    broker = PrivateRedis(tmp_path)
    broker.start()
    from config.celery import app

    try:
        with app.connection_for_write(broker.url) as conn:
            first = submit(served, "First", enqueue=False)
            second = submit(served, "Second", "tiny.tar.gz", enqueue=False)
            # Both messages are sent to the private broker, not the shared test one.
            from leaderboard.tasks import evaluate_submission

            for sub in (first, second):
                evaluate_submission.apply_async((sub.pk,), connection=conn)
        env = worker_env(broker.url, tmp_path, HEARTBEAT_STALE_S="10", REQUEUE_PENDING_AFTER_S="2")
        with celery_worker(broker.url, tmp_path, "eval", name="survivor") as worker:
            wait_for(lambda: status(first) == "evaluating", 240, "the first to start", worker)
            broker.stop()  # the pending message for "second" is gone with it
            time.sleep(3)
            broker.start()
            deadline = time.monotonic() + 420
            while time.monotonic() < deadline:
                if all(status(s) in Submission.ENDED for s in (first, second)):
                    break
                run_watchdog(env)  # what beat would do every minute
                time.sleep(3)
        one_set_of_scores(first)
        one_set_of_scores(second)
    finally:
        broker.stop()


def test_a_database_outage_during_a_run_is_ridden_out(site, redis_url, served, tmp_path):
    s = connection.settings_dict
    proxy = CuttableProxy(s["HOST"] or "127.0.0.1", int(s["PORT"] or 5432))
    url = worker_database_url().replace(f":{s['PORT'] or 5432}/", f":{proxy.port}/")
    sub = submit(served)
    try:
        with celery_worker(redis_url, tmp_path, "eval", name="patient", DATABASE_URL=url) as worker:
            wait_for(lambda: evaluating_mid_way(sub), 240, "the evaluation", worker)
            proxy.cut()
            time.sleep(6)
            proxy.restore()
            wait_for(lambda: status(sub) in Submission.ENDED, 300, "the run to end", worker)
        log = worker.log.read_text()
        assert "not written: database unreachable" in log  # the outage really hit the worker
    finally:
        proxy.close()
    one_set_of_scores(sub)
    assert Submission.objects.get(pk=sub.pk).attempts == 1


def test_a_run_past_its_time_limit_fails_with_the_reason(site, redis_url, served, tmp_path):
    # The limits travel in the message, set by whoever enqueues (here: this process).
    site.CELERY_TASK_SOFT_TIME_LIMIT, site.CELERY_TASK_TIME_LIMIT = 3, 13
    sub = submit(served)
    with celery_worker(
        redis_url, tmp_path, "eval", name="hurried", EVAL_SOFT_TIME_LIMIT="3"
    ) as worker:
        wait_for(lambda: status(sub) in Submission.ENDED, 240, "the time limit", worker)
    sub.refresh_from_db()
    assert sub.status == "failed"
    assert "ran past its time limit of 3 s" in sub.error
    assert not EvaluationRun.objects.exists() and not TaskScore.objects.exists()


def test_a_cancelled_run_stops_within_seconds_and_frees_its_worker(
    site, redis_url, served, tmp_path
):
    first, second = submit(served, "First"), submit(served, "Second", "tiny.tar.gz")
    with celery_worker(redis_url, tmp_path, "eval", name="w") as worker:
        wait_for(lambda: status(first) == "evaluating", 240, "the first to start", worker)
        assert runstate.cancel(first.pk)
        started = time.monotonic()
        # The worker moves on to the next submission: it was freed.
        wait_for(lambda: status(second) != "pending", 30, "the worker to be freed", worker)
        assert time.monotonic() - started < 15
        wait_for(lambda: status(second) in Submission.ENDED, 300, "the second", worker)
    assert status(first) == "cancelled"
    assert not EvaluationRun.objects.filter(submissions=first).exists()
    assert status(second) == "done"


def test_the_same_checkpoint_submitted_twenty_times_at_once_is_evaluated_once(
    site, live_server, redis_url, served
):
    import redis

    site.SUBMISSION_RATE_LIMIT = 100
    body = json.dumps({"url": f"{served.url}/tiny.tar.gz", "name": "Twenty"}).encode()
    barrier = threading.Barrier(20)

    def post(_):
        request = urllib.request.Request(
            f"{live_server.url}/api/submissions",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        barrier.wait()
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())["id"]

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    assert Submission.objects.count() == 1
    assert {pk for _, pk in answers} == {Submission.objects.get().pk}
    assert sorted(code for code, _ in answers) == [200] * 19 + [201]
    assert redis.Redis.from_url(redis_url).llen("eval") == 1  # one message, one evaluation
