"""A .gguf URL through the site: the form and the API accept it, and the pipeline evaluates it
with lm-eval on the sample set (manage.py evaluate, the worker's own code path), recording the
GGUF quantisation type and file size in the run's provenance."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from evaluator import harness
from leaderboard.models import DeviceProfile, LatencyResult, Submission


@pytest.fixture
def site(settings, tmp_path, served_gguf):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.WORK_DIR = tmp_path / "work"
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served_gguf.app.port}"]  # that only
    settings.EVAL_DATA = "sample"
    settings.SITE_URL = "http://127.0.0.1:8000"
    DeviceProfile.objects.filter(reported=False).update(active=False)
    return settings


def test_the_form_accepts_a_gguf_url(client, db, site, served_gguf):
    url = f"{served_gguf.url}/tiny-Q4_1.gguf"
    response = client.post("/submit/", {"url": url, "name": "Tiny Q4_1", "notes": ""})
    assert response.status_code == 302
    sub = Submission.objects.get()
    assert (sub.source_kind, sub.source_url, sub.checkpoint_key) == ("gguf", url, f"url:{url}")


def test_the_api_accepts_a_gguf_url_and_refuses_a_private_one(client, db, site, served_gguf):
    url = f"{served_gguf.url}/tiny-Q8_0.gguf"
    body = {"url": url, "name": "Tiny Q8_0"}
    response = client.post("/api/submissions", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert Submission.objects.get().source_kind == "gguf"
    body = {"url": "https://10.0.0.1/model-Q4_1.gguf", "name": "Private"}
    response = client.post("/api/submissions", body, content_type="application/json")
    assert response.status_code == 400 and "private" in response.json()["error"]


def evaluate(url: str, name: str) -> Submission:
    args = ["--name", name, "--tasks", "arc_easy", "boolq", "--limit", "10"]
    call_command("evaluate", url, *args, stdout=StringIO())
    return Submission.objects.get(name=name)


def scores(sub: Submission) -> dict:
    return {(s.task.harness_name, s.metric): s.value for s in sub.run.scores.all()}


def loglikelihoods(sub: Submission) -> list[float]:
    records = harness.read_samples_jsonl_gz(sub.run.samples_file.path)
    return [float(resp[0][0]) for r in records for resp in r["resps"]]


def test_a_gguf_is_evaluated_on_the_sample_set_as_the_original_would_be(
    client, db, site, served_gguf
):
    gguf = evaluate(f"{served_gguf.url}/tiny-F32.gguf", "Tiny GGUF F32")
    assert gguf.status == "done" and gguf.run.benchmark == "sample", gguf.error
    size = (served_gguf.root / "tiny-F32.gguf").stat().st_size
    checkpoint = {"format": "gguf", "gguf_type": "F32", "gguf_bytes": size}
    assert gguf.run.provenance["checkpoint"] == checkpoint
    assert gguf.entry.params == 106_816 and gguf.entry.architecture == "LlamaForCausalLM"
    assert gguf.entry.source_url == f"{served_gguf.url}/tiny-F32.gguf"
    # F32 holds the weights exactly: the same scores as the safetensors original.
    original = evaluate(f"{served_gguf.url}/tiny.tar.gz", "Tiny original")
    assert original.run.provenance["checkpoint"] == {"format": "safetensors"}
    assert scores(gguf) == scores(original) and len(scores(gguf)) == 3
    # ... down to each answer's log-likelihood (the model ran the same float32 weights).
    assert len(loglikelihoods(gguf)) >= 40  # 10 ARC-e items (3-5 answers), 10 BoolQ (2)
    assert loglikelihoods(gguf) == pytest.approx(loglikelihoods(original), abs=1e-5)
    page = client.get(f"/models/{gguf.entry.slug}/").content.decode()
    assert "GGUF F32 (0.4 MB file), dequantised to float32 to run" in page
    details = json.loads(client.get(f"/models/{gguf.entry.slug}.json").content)["runs"][0]
    assert details["details"]["checkpoint"] == checkpoint


def test_a_quantised_gguf_records_its_type(db, site, served_gguf):
    sub = evaluate(f"{served_gguf.url}/tiny-gguf.tar.gz", "Tiny GGUF Q8_0 archive")
    assert sub.status == "done", sub.error
    assert sub.run.provenance["checkpoint"]["gguf_type"] == "Q8_0"
    assert all(0 <= value <= 1 for value in scores(sub).values())


def test_a_gguf_entry_is_probed_for_latency_from_its_gguf(db, site, served_gguf):
    # The probe fetches (and converts) the checkpoint again, and checks it is the same file.
    sub = evaluate(f"{served_gguf.url}/tiny-Q4_1.gguf", "Tiny GGUF Q4_1")
    assert sub.status == "done", sub.error
    DeviceProfile.objects.update_or_create(
        slug="local-cpu",
        defaults={"name": "Local CPU", "threads": 1, "active": True, "reported": False},
    )
    out = StringIO()
    call_command("probe", sub.entry.slug, "--profile", "local-cpu", stdout=out)
    assert "ms/token" in out.getvalue()
    result = LatencyResult.objects.get(entry=sub.entry)
    assert result.kind == "measured" and result.execute_ms > 0
    assert result.precision == "Q4_1"  # the file's rung, not the fp32 reference's


def test_a_gguf_run_is_the_variant_of_its_type_never_ranked_with_references(
    client, db, site, served_gguf
):
    sub = evaluate(f"{served_gguf.url}/tiny-Q4_1.gguf", "Tiny GGUF Q4_1")
    assert sub.status == "done", sub.error
    size = (served_gguf.root / "tiny-Q4_1.gguf").stat().st_size
    assert (sub.run.precision, sub.run.weights_bytes_packed) == ("Q4_1", size)
    assert sub.run.reference is None and "GGUF Q4_1" in sub.run.scheme
    # Not among the fp32 runs (the default), listed when its precision is chosen.
    default = client.get("/").content.decode()
    assert "Tiny GGUF Q4_1" not in default
    assert '<option value="Q4_1"' in default  # the precision filter offers it
    chosen = client.get("/?precision=Q4_1").content.decode()
    assert "Tiny GGUF Q4_1" in chosen
    response = client.get("/leaderboard.json?precision=Q4_1&benchmark=sample")
    rows = json.loads(b"".join(response.streaming_content))
    assert [r["model"] for r in rows["rows"]] == ["Tiny GGUF Q4_1"]


@pytest.mark.integration
def test_a_submitted_gguf_is_evaluated_by_a_worker(
    client, transactional_db, redis_url, site, served_gguf, tmp_path
):
    from tests.workers import celery_worker, wait_for

    site.EVAL_LIMIT = 5  # stored on the row: the worker runs 5 items of each task
    with celery_worker(redis_url, tmp_path, "eval,default") as worker:
        url = f"{served_gguf.url}/tiny-Q4_1.gguf"
        response = client.post("/submit/", {"url": url, "name": "Tiny Q4_1 worker", "notes": ""})
        assert response.status_code == 302
        sub = Submission.objects.get()
        wait_for(
            lambda: Submission.objects.get(pk=sub.pk).status in Submission.ENDED,
            420,
            "the submission to end",
            worker,
        )
    sub.refresh_from_db()
    assert sub.status == "done", (sub.error, sub.log_tail)
    assert sub.run.provenance["checkpoint"]["gguf_type"] == "Q4_1"
    assert set(sub.run.scores.values_list("n", flat=True)) == {5}
    assert sub.run.scores.filter(metric="acc").count() == 8
