"""The whole path, all real: form → PostgreSQL row → Redis → Celery worker process →
fetch over HTTP → lm-eval on the sample set → scores → pages; then the latency probe."""

import csv
import gzip
import io
import json

import pytest
from django.db.models import F

from leaderboard.models import DeviceProfile, LatencyResult, Submission
from tests.responses import body
from tests.workers import celery_worker, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def site(settings, tmp_path, served):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}"]  # that server only
    settings.EVAL_DATA = "sample"
    DeviceProfile.objects.update_or_create(
        slug="local-cpu",
        defaults={
            "name": "Local CPU",
            "threads": 1,
            "runtime": "eager",
            "dtype": "float32",
            "active": True,
            "reported": False,
        },
    )
    return settings


def test_a_submitted_archive_is_evaluated_by_a_worker_and_shown_everywhere(
    client, transactional_db, redis_url, served, site, tmp_path
):
    with celery_worker(redis_url, tmp_path, "eval,default,latency.local-cpu") as worker:
        response = client.post(
            "/submit/",
            {"url": f"{served.url}/tiny.tar.gz", "name": "Tiny integration", "notes": "it works"},
        )
        assert response.status_code == 302
        sub = Submission.objects.get()
        assert response["Location"] == f"/submissions/{sub.pk}/"
        wait_for(
            lambda: Submission.objects.get(pk=sub.pk).status in Submission.ENDED,
            420,
            "the submission to end",
            worker,
        )
    sub.refresh_from_db()
    assert sub.status == "done", (sub.error, sub.log_tail)
    assert sub.attempts == 1
    # The eval worker warmed up before its pool forked (config/celery.py), and the run
    # went through the default engine.
    assert "evaluation imports and task index ready" in worker.log.read_text()
    assert sub.run.provenance["engine"]["lm_eval_model"] == "hf-trie"

    run = sub.run
    assert (run.kind, run.benchmark, run.ranked) == ("measured", "sample", False)
    headline = run.scores.filter(metric=F("task__headline_metric"))
    assert headline.count() == 8
    # Every metric lm-eval returns: acc for all eight, acc_norm for the five that have it.
    assert run.scores.count() == 13
    assert set(run.scores.values_list("n", flat=True)) == {40}
    assert all(s.stderr is not None and 0 <= s.value <= 1 for s in run.scores.all())
    assert run.provenance["versions"]["lm_eval"] == "0.4.13"
    assert run.provenance["benchmark"] == "sample" and run.provenance["num_fewshot"] == 0
    assert sub.entry.params > 0 and sub.entry.layers == 2
    assert len(sub.entry.content_sha256) == 64

    with gzip.open(run.samples_file.path, "rt") as fh:
        samples = [json.loads(line) for line in fh]
    assert len(samples) == 8 * 40
    assert {s["task"] for s in samples} == {
        "arc_easy",
        "arc_challenge",
        "boolq",
        "piqa",
        "social_iqa",
        "hellaswag",
        "openbookqa",
        "winogrande",
    }

    page = body(client.get("/"))
    assert "Tiny integration" in page and 'id="unranked"' in page
    rows = list(csv.DictReader(io.StringIO(body(client.get("/leaderboard.csv?benchmark=sample")))))
    assert [r["model"] for r in rows] == ["Tiny integration"]
    assert rows[0]["source"].startswith("measured: lm-eval 0.4.13, sample set")
    model_page = body(client.get(sub.entry.get_absolute_url()))
    assert "Per-sample records" in model_page and "sample set" in model_page
    data = json.loads(body(client.get(f"/models/{sub.entry.slug}.json")))
    assert len(data["runs"][0]["scores"]) == 13

    # The latency worker took the probe from latency.local-cpu and stored it.
    latency = LatencyResult.objects.get(entry=sub.entry, profile__slug="local-cpu")
    assert latency.kind == "measured"
    assert 0 < latency.decode_ms_p50 <= latency.decode_ms_p90
    assert latency.load_ms > 0 and latency.init_ms > 0 and latency.peak_rss_mb > 0
    assert latency.environment["threads"] == 1
