"""Issue 14 items 6 and 7 with real workers: an evaluation and a probe never run on one host
at once (the host lock), and a submission's scores are on the leaderboard while its probe
still waits; latency fills in when the probe answers."""

import json
import os
import time

import pytest

from leaderboard import latency
from leaderboard.models import DeviceProfile, LatencyResult, Probe, Submission
from tests.responses import body
from tests.test_hostlock import holder, release, said
from tests.workers import celery_worker, wait_for

S = Submission.Status


@pytest.fixture
def site(settings, tmp_path, served):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}"]  # that server only
    settings.EVAL_DATA = "sample"
    DeviceProfile.objects.update_or_create(
        slug="local-cpu",
        defaults={"name": "Local CPU", "threads": 1, "active": True, "reported": False},
    )
    return settings


def status(pk) -> Submission:
    return Submission.objects.get(pk=pk)


def still(pk, field, seconds=3.0):
    """The submission's `field` before and after `seconds` (while something should wait)."""
    before = getattr(status(pk), field)
    time.sleep(seconds)
    return before, getattr(status(pk), field)


@pytest.mark.integration
def test_evaluation_and_probe_take_turns_on_a_host_and_scores_show_before_latency(
    client, transactional_db, redis_url, served, site, tmp_path
):
    lock = tmp_path / "work" / "host.lock"  # the workers' default: $WORK_DIR/host.lock
    lock.parent.mkdir(parents=True)
    probing_elsewhere = holder(lock, "probe")  # a probe measures on this host
    assert said(probing_elsewhere).startswith("held")
    with celery_worker(redis_url, tmp_path, "eval,default", name="eval") as worker:
        response = client.post(
            "/api/submissions",
            {"url": f"{served.url}/tiny.tar.gz", "name": "Tiny turns"},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        pk = response.json()["id"]
        wait_for(lambda: status(pk).status == S.EVALUATING, 120, "the fetch", worker)
        # The evaluation waits for the probe: no task starts, but its heartbeat goes on (the
        # watchdog must not take a waiting worker for a dead one).
        before, after = still(pk, "heartbeat")
        assert after > before
        sub = status(pk)
        assert (sub.status, sub.task_index, sub.task_fraction) == (S.EVALUATING, 0, 0.0)
        release(probing_elsewhere)
        # No latency worker yet: the evaluation ends in "evaluated, probing".
        wait_for(lambda: status(pk).status == S.PROBING, 300, "the evaluation", worker)

    sub = status(pk)
    assert sub.get_status_display() == "evaluated, probing"
    board = json.loads(body(client.get("/leaderboard.json?benchmark=sample")))
    [row] = [r for r in board["rows"] if r["slug"] == sub.entry.slug]
    assert row["avg"]["value"] is not None and len(row["scores"]) == 8
    assert "Tiny turns" in body(client.get("/?benchmark=sample"))
    model = json.loads(body(client.get(f"/models/{sub.entry.slug}.json")))
    assert model["latency"] == [] and len(model["runs"][0]["scores"]) == 13

    evaluating_here = holder(lock)  # now an evaluation holds the host: the probe must wait
    assert said(evaluating_here).startswith("held")
    with celery_worker(redis_url, tmp_path, "latency.local-cpu", name="lat") as worker:
        probe = Probe.objects.get(submission_id=pk)
        wait_for(lambda: Probe.objects.get(pk=probe.pk).status == "running", 60, "the claim")
        beat = Probe.objects.get(pk=probe.pk).heartbeat
        # It fetches the checkpoint (the worker's first imports take seconds), then waits
        # for the host, beating meanwhile, and measures nothing while the evaluation runs.
        wait_for(lambda: Probe.objects.get(pk=probe.pk).heartbeat > beat, 60, "a beat", worker)
        time.sleep(3)
        assert Probe.objects.get(pk=probe.pk).status == "running"
        assert not LatencyResult.objects.filter(entry=sub.entry).exists()
        release(evaluating_here)
        wait_for(lambda: status(pk).status == S.DONE, 240, "the probe", worker)

    result = LatencyResult.objects.get(entry=sub.entry, profile__slug="local-cpu")
    env = result.environment
    assert env["host_lock"] == str(lock) and env["host_lock_wait_s"] >= 3
    assert isinstance(env["under_load"], bool)
    assert env["load_before"] is not None and env["load_after"] is not None
    assert result.decode_n >= 5 * 32 and result.decode_stable is not None
    assert result.decode_ms_min <= result.decode_ms_p50 <= result.decode_ms_p90
    model = json.loads(body(client.get(f"/models/{sub.entry.slug}.json")))
    [shown] = model["latency"]
    assert shown["under_load"] == env["under_load"] and shown["decode_n"] == result.decode_n


def test_a_profile_without_threads_gets_the_cores_the_worker_may_use(db):
    profile = DeviceProfile(slug="p", name="p", threads=None)
    everything = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(everything)})  # as `taskset -c 0` would
        assert latency.settings_for(profile).threads == 1
    finally:
        os.sched_setaffinity(0, everything)
    profile.threads = 3
    assert latency.settings_for(profile).threads == 3
