"""Issue 14 items 6 and 7 with real workers: an evaluation and a probe never run on one host
at once (the host lock), and a submission's scores are on the leaderboard while its probe
still waits; latency fills in when the probe answers."""

import json
import os
import time

import pytest

from evaluator import hostlock
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


def test_the_export_budget_is_the_sites(db, settings):
    settings.PROBE_EXPORT_TIMEOUT_S = 5400
    wanted = latency.settings_for(DeviceProfile(slug="p", name="p", runtime="executorch"))
    assert wanted.export_timeout_s == 5400 and wanted.timeout_s == 600


def test_a_submission_cancelled_while_waiting_for_the_host_stops_waiting(db, tmp_path):
    from evaluator import harness
    from leaderboard import pipeline, runstate
    from tests.factories import make_entry

    sub = Submission.objects.create(
        url="x", source_kind="archive", checkpoint_key="url:x", name="x", secret="s",
        status=S.EVALUATING, attempts=1, entry=make_entry("Waiting"),
    )  # fmt: skip
    beat = runstate.Beat(sub.pk, attempt=1)
    lock = tmp_path / "host.lock"
    probing = holder(lock, "probe")
    assert said(probing).startswith("held")
    try:
        runstate.cancel(sub.pk)
        with pytest.raises(harness.Cancelled):
            with hostlock.hold(lock, tick=lambda: pipeline._beat_or_stop(beat), poll_s=0.05):
                pytest.fail("ran beside a probe")
    finally:
        release(probing)


def test_scores_are_on_the_board_while_probing_and_latency_fills_in_when_it_answers(client, db):
    from leaderboard import runstate
    from tests.factories import make_entry, make_run

    DeviceProfile.objects.update(active=False)  # local-cpu (migration 0003): one probe only
    profile = DeviceProfile.objects.create(slug="board", name="Board", threads=1)
    entry = make_entry("Early scores")
    sub = Submission.objects.create(
        url="x", source_kind="archive", checkpoint_key="url:x", name="x", secret="s",
        status=S.EVALUATING, entry=entry, run=make_run(entry),
    )  # fmt: skip
    assert runstate.start_probing(sub) == S.PROBING

    def board_row():
        rows = json.loads(body(client.get("/leaderboard.json?profile=board")))["rows"]
        return next(r for r in rows if r["slug"] == entry.slug)

    row = board_row()
    assert row["avg"]["value"] == 50.0 and row["latency"]["execute_ms"] is None
    [probe] = Probe.objects.filter(submission=sub, profile=profile)
    LatencyResult.objects.create(
        entry=entry, profile=profile, kind="measured", execute_ms=2.5, decode_ms_p50=2.5,
        decode_n=160, decode_stable=False, environment={"under_load": True},
    )  # fmt: skip
    assert board_row()["latency"]["execute_ms"] == 2.5
    assert status(sub.pk).status == S.PROBING  # until the probe itself says it is done
    runstate.finish_probe(probe.pk)
    assert status(sub.pk).status == S.DONE
    [shown] = json.loads(body(client.get(f"/models/{entry.slug}.json")))["latency"]
    assert (shown["decode_stable"], shown["under_load"], shown["decode_n"]) == (False, True, 160)


def probe_waits(lock) -> bool:
    """Whether a probe holds the host lock's "a probe is waiting" flag (evaluator.hostlock)."""
    import fcntl

    fd = os.open(lock.with_name(lock.name + ".probe"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_an_executorch_export_goes_on_beside_an_evaluation_and_only_the_measurement_waits(
    db, settings, tmp_path
):
    """Lowering takes minutes and is not timed, so it shares the host as an evaluation does;
    the measurement that follows still has the host to itself."""
    import importlib.util
    import threading

    from evaluator.latency import ProbeSettings
    from evaluator.tinymodel import TinySpec, build_tiny_model
    from tests.conftest import need

    need(importlib.util.find_spec("executorch") is not None, "executorch is not installed")
    lock = tmp_path / "host.lock"
    settings.HOST_LOCK_FILE = str(lock)
    spec = TinySpec(layers=1, hidden=256, heads=4, kv_heads=2, ffn=768, vocab=512)
    model_dir = build_tiny_model(tmp_path / "m", spec)
    profile = DeviceProfile.objects.create(
        slug="et", name="ET", runtime="executorch", threads=1, bandwidth_gb_s=10.0
    )
    wanted = ProbeSettings(runtime="executorch", prompt_tokens=16, decode_depth=16,
                           decode_tokens=8, warmup=1, repeats=3, budget_s=1)  # fmt: skip
    evaluating = holder(lock)
    assert said(evaluating).startswith("held")
    done = {}

    def probe_now():
        try:
            done["result"] = latency.measure(
                model_dir, wanted, profile, lambda: None, tmp_path / "w"
            )
        except Exception as exc:  # shown by the assertions below
            done["error"] = exc

    thread = threading.Thread(target=probe_now)
    thread.start()
    try:
        exported = tmp_path / "w" / "pte-fp32" / "export.json"
        deadline = time.monotonic() + 240
        while not exported.exists() and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.5)
        assert exported.exists(), f"the export waited for the evaluation {done}"
        # Then the measurement queues for the host alone (it raises the "a probe waits"
        # flag) and stays queued while the evaluation holds on.
        while not probe_waits(lock) and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.2)
        time.sleep(1)
        assert probe_waits(lock) and thread.is_alive() and not done, done
    finally:
        release(evaluating)
        thread.join(240)
    assert "result" in done, done
    result = done["result"]
    assert result.environment["host_lock_wait_s"] > 0 and result.decode_ms_p50 > 0
    assert result.environment["export"]["precision"]["precision"] == "fp32"
