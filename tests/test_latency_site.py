import csv
import io
import json

import pytest

from leaderboard import intake
from leaderboard.models import DeviceProfile, LatencyResult, Submission
from tests.factories import make_entry, make_run
from tests.responses import body
from tests.workers import celery_worker, wait_for


@pytest.fixture
def board_profile(db):
    return DeviceProfile.objects.create(
        slug="test-board", name="Test board", threads=1, runtime="eager", dtype="float32"
    )


def measured_latency(entry, profile, execute_ms, rss=300.0):
    return LatencyResult.objects.create(
        entry=entry,
        profile=profile,
        kind="measured",
        citation="measured by this site",
        load_ms=1.0,
        init_ms=50.0,
        execute_ms=execute_ms,
        decode_ms_p50=execute_ms,
        decode_ms_p90=execute_ms * 1.2,
        decode_tok_s=1000 / execute_ms,
        peak_rss_mb=rss,
        prefill_ms=5.0,
        prefill_tokens=128,
    )


def test_the_latency_page_shows_table_7_as_reported_beside_measured_profiles(
    client, reported, board_profile
):
    entry = make_entry("Fast small", params=100_000_000)
    make_run(entry)
    measured_latency(entry, board_profile, 4.0)
    html = body(client.get("/latency/"))
    assert html.index("Test board") < html.index("iPhone 13")
    assert "1,361.7" in html and "3,347.7" in html and "60 (2x30 shared)" in html
    data = json.loads(body(client.get("/latency.json")))
    profiles = {p["slug"]: p for p in data["profiles"]}
    assert profiles["iphone13-executorch-mps"]["reported"] is True
    rows = {(r["profile"], r["model"]): r for r in data["rows"]}
    assert rows[("iphone13-executorch-mps", "MobileLLM-LS-125M")]["execute_ms"] == 16.0
    assert rows[("test-board", "Fast small")]["avg"] == 50.0
    table = list(csv.DictReader(io.StringIO(body(client.get("/latency.csv")))))
    assert len(table) == 4


def test_accuracy_against_latency_has_a_pareto_front(client, db, board_profile):
    specs = [
        ("A fast weak", 2.0, 0.40),
        ("B slow strong", 9.0, 0.60),
        ("C slow weak", 8.0, 0.35),
        ("D mid", 5.0, 0.50),
    ]
    for name, execute, acc in specs:
        entry = make_entry(name)
        make_run(
            entry,
            dict.fromkeys(
                [
                    "arc_easy",
                    "arc_challenge",
                    "boolq",
                    "piqa",
                    "siqa",
                    "hellaswag",
                    "obqa",
                    "winogrande",
                ],
                acc,
            ),
        )
        measured_latency(entry, board_profile, execute, rss=100 + execute)
    data = json.loads(body(client.get("/charts/accuracy-vs-latency.json?profile=test-board")))
    front = [data["points"][i]["name"] for i in data["pareto"]]
    assert front == ["A fast weak", "D mid", "B slow strong"]
    assert data["size"] == "peak_rss_mb"
    assert client.get("/charts/accuracy-vs-latency.json").status_code == 400


def test_the_leaderboard_gains_latency_columns_for_a_chosen_profile(
    client, reported, board_profile
):
    rows = list(
        csv.DictReader(
            io.StringIO(
                body(
                    client.get(
                        "/leaderboard.csv?profile=iphone13-executorch-mps&size=125M&sort=execute_ms"
                    )
                )
            )
        )
    )
    assert [r["model"] for r in rows[:2]] == ["MobileLLM-125M", "MobileLLM-LS-125M"]
    assert rows[0]["execute_ms"] == "15.6" and rows[2]["execute_ms"] == ""
    html = body(client.get("/?profile=iphone13-executorch-mps"))
    assert 'data-sort="execute_ms"' in html
    plain = list(csv.DictReader(io.StringIO(body(client.get("/leaderboard.csv")))))
    assert "execute_ms" not in plain[0]


@pytest.mark.integration
def test_a_worker_on_a_profiles_own_queue_runs_its_probes(
    transactional_db, redis_url, served, settings, tmp_path, board_profile
):
    """A board joins by starting one worker on latency.<profile>; it fetches the checkpoint
    itself and stores the measurement."""
    from leaderboard import runstate

    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}"]  # that server only
    url = f"{served.url}/tiny.tar.gz"
    sub, _ = intake.create_submission(intake.resolve_source(url), url, "Probe me", enqueue=False)
    entry = make_entry("Probe me")
    run = make_run(entry)
    Submission.objects.filter(pk=sub.pk).update(entry=entry, run=run, status="probing")
    with celery_worker(redis_url, tmp_path, "latency.test-board", name="board") as worker:
        # Sent to latency.test-board as the pipeline sends it after an evaluation.
        runstate.queue_probe(entry, board_profile, submission=Submission.objects.get(pk=sub.pk))
        wait_for(
            lambda: Submission.objects.get(pk=sub.pk).status == "done",
            240,
            "the probe to finish",
            worker,
        )
    result = LatencyResult.objects.get(entry=entry, profile=board_profile)
    assert result.environment["threads"] == 1
    assert 0 < result.decode_ms_p50 <= result.decode_ms_p90
    assert result.roofline_frac is not None and result.roofline_frac > 0
    board_profile.refresh_from_db()
    assert board_profile.bandwidth_gb_s > 0  # measured once, kept on the profile
