"""The submission form, duplicates, rate limit, cancel, and the pipeline's refusals, with
task functions called directly (the worker wiring is tested in test_submission_worker)."""

import io
import json
import shutil
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from evaluator import checkpoint
from leaderboard import intake, pipeline, tasks
from leaderboard.models import Entry, EvaluationRun, Submission, TaskScore


@pytest.fixture
def site(settings, tmp_path, served):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.WORK_DIR = tmp_path / "work"
    # The test server's port, and 443 for the https://127.0.0.1/ URLs only ever queued.
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}", "127.0.0.1"]
    settings.EVAL_DATA = "sample"
    return settings


def post(client, url, name="A model", notes=""):
    return client.post("/submit/", {"url": url, "name": name, "notes": notes})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/model.tar.gz", "only http(s)"),
        ("file:///etc/passwd", "only http(s)"),
        ("javascript:alert(1)", "only http(s)"),
        ("not a url", "ASCII without spaces"),
        ("https://example.com/model.exe", ".tar.gz, .tgz, .tar or .zip"),
        ("https://user:pw@example.com/m.tar.gz", "remove the user name and password"),
        ("https://169.254.169.254/latest/m.tar.gz", "169.254.169.254"),
        ("https://10.0.0.1/m.tar.gz", "10.0.0.1"),
        ("https://[::1]/m.tar.gz", "::1"),
        ("https://localhost/m.tar.gz", "localhost"),
        ("https://224.0.0.1/m.tar.gz", "224.0.0.1"),
    ],
)
def test_it_refuses_bad_or_private_urls_inline_and_stores_nothing(client, db, url, message):
    response = post(client, url)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="error-url"' in html
    assert message.replace("'", "&#x27;") in html or message in html
    assert not Submission.objects.exists()


def test_http_is_refused_for_hosts_that_are_not_allow_listed(client, db, settings):
    settings.CHECKPOINT_ALLOWED_HOSTS = []
    response = post(client, "http://127.0.0.1:9/model.tar.gz")
    assert response.status_code == 400
    assert not Submission.objects.exists()


def test_name_and_notes_are_checked(client, db, site):
    response = post(client, "https://127.0.0.1/m.tar.gz", name="   ")
    assert 'id="error-name"' in response.content.decode()
    response = post(client, "https://127.0.0.1/m.tar.gz", name="bad\u202ename")
    assert "control or invisible characters" in response.content.decode()
    response = post(client, "https://127.0.0.1/m.tar.gz", notes="x" * 2001)
    assert 'id="error-notes"' in response.content.decode()
    assert not Submission.objects.exists()


def test_a_valid_submission_is_queued_and_the_submitter_lands_on_its_page(client, db, site):
    response = post(
        client, "https://127.0.0.1/m.tar.gz", name="Tiny (v2) & co's", notes="a < b, and 2 > 1"
    )
    sub = Submission.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/submissions/{sub.pk}/"
    assert (sub.status, sub.source_kind, sub.data) == ("pending", "archive", "sample")
    page = client.get(response["Location"]).content.decode()
    assert "Tiny (v2) &amp; co&#x27;s" in page and "a &lt; b, and 2 &gt; 1" in page
    assert 'id="cancel"' in page  # the submitter may cancel
    data = json.loads(client.get(f"/submissions/{sub.pk}.json").content)
    assert data["status"] == "pending" and data["task_count"] == 8


def test_the_same_checkpoint_twice_links_to_the_first_submission(client, db, site):
    post(client, "https://127.0.0.1/m.tar.gz")
    first = Submission.objects.get()
    response = post(client, "https://127.0.0.1/m.tar.gz", name="Again")
    assert response["Location"] == f"/submissions/{first.pk}/"
    assert Submission.objects.count() == 1


def test_submissions_are_rate_limited_per_client(client, db, site):
    site.SUBMISSION_RATE_LIMIT = 2
    for i in range(2):
        assert post(client, f"https://127.0.0.1/m{i}.tar.gz").status_code == 302
    response = post(client, "https://127.0.0.1/m9.tar.gz")
    assert response.status_code == 429
    assert "Too many submissions" in response.content.decode()
    assert Submission.objects.count() == 2


def test_only_the_submitter_can_cancel(client, db, site):
    post(client, "https://127.0.0.1/m.tar.gz")
    sub = Submission.objects.get()
    from django.test import Client

    stranger = Client()
    stranger.post(f"/submissions/{sub.pk}/cancel/")
    assert Submission.objects.get().status == "pending"
    client.post(f"/submissions/{sub.pk}/cancel/")
    assert Submission.objects.get().status == "cancelled"
    # A cancelled submission is never claimed by a worker.
    assert pipeline.run(sub.pk) == "cancelled"


def test_the_queue_lists_submissions(client, db, site):
    post(client, "https://127.0.0.1/m.tar.gz", name="Queued one")
    assert "Queued one" in client.get("/queue/").content.decode()
    data = json.loads(b"".join(client.get("/queue.json").streaming_content))
    assert data["count"] == 1 and data["submissions"][0]["status"] == "pending"


def archive(root, name: str, members: dict[str, bytes]) -> str:
    with tarfile.open(root / name, "w:gz") as tar:
        for path, data in members.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return name


def submission_for(url: str) -> Submission:
    source = intake.resolve_source(url)
    sub, created = intake.create_submission(source, url, "Hostile", enqueue=False)
    assert created
    return sub


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"model/../../evil.txt": b"x", "model/config.json": b"{}"}, ".."),
        ({"/etc/evil": b"x"}, "absolute"),
        (
            {"model/config.json": b'{"model_type": "llama"}', "model/pytorch_model.bin": b"x"},
            "pickle weights are refused",
        ),
    ],
)
def test_the_worker_rejects_hostile_archives_with_a_clear_message(
    db, site, served, members, message
):
    name = archive(served.root, f"hostile-{abs(hash(message))}.tar.gz", members)
    sub = submission_for(f"{served.url}/{name}")
    assert pipeline.run(sub.pk) == "rejected"
    sub.refresh_from_db()
    assert message in sub.error
    assert not Entry.objects.exists() and not EvaluationRun.objects.exists()
    assert not any(site.WORK_DIR.glob("**/evil*"))


def test_a_member_that_is_a_file_and_then_a_folder_is_rejected_not_a_crash(db, site, served):
    # Both names are files a model keeps, so both are written (others are skipped unread).
    members = {"config.json": b"{}", "config.json/tokenizer.json": b"{}"}
    sub = submission_for(f"{served.url}/{archive(served.root, 'file-dir.tar.gz', members)}")
    assert pipeline.run(sub.pk) == "rejected"
    sub.refresh_from_db()
    assert "'config.json/tokenizer.json': a file and a folder share its path" in sub.error
    assert "Traceback" not in sub.log_tail


def test_a_crashing_run_shows_no_traceback_or_server_path_in_public(client, db, site, served):
    # A data directory that is not there: the evaluation raises an error quoting its path.
    site.EVAL_DATA = str(site.WORK_DIR.parent / "no-such-data")
    sub = submission_for(f"{served.url}/tiny.tar.gz")
    assert pipeline.run(sub.pk) == "failed"
    sub.refresh_from_db()
    assert "Traceback" in sub.operator_log and str(site.WORK_DIR.parent) in sub.operator_log
    assert "no-such-data" in sub.error  # the message still says what went wrong
    server_paths = [str(site.WORK_DIR.parent), str(Path(pipeline.__file__).parent.parent)]
    for page in (f"/submissions/{sub.pk}/", f"/submissions/{sub.pk}.json"):
        body = client.get(page).content.decode()
        assert sub.name in body or '"id"' in body
        assert "Traceback" not in body and 'File "' not in body
        assert not [p for p in server_paths if p in body], body


def test_a_model_whose_first_logits_are_not_finite_is_rejected_never_scored(
    db, site, served, tiny_model_dir, tmp_path
):
    from safetensors.torch import load_file, save_file

    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "overflow"))
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    tensors = load_file(model / "model.safetensors")
    tensors["model.norm.weight"].fill_(3e38)  # finite, and so is the head; their product not
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone().fill_(3e38)
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    with tarfile.open(served.root / "overflow.tar.gz", "w:gz") as tar:
        tar.add(model, arcname="overflow")
    sub = submission_for(f"{served.url}/overflow.tar.gz")
    assert pipeline.run(sub.pk) == "rejected"
    sub.refresh_from_db()
    assert "first forward pass gives non-finite logits" in sub.error
    assert not EvaluationRun.objects.exists() and not TaskScore.objects.exists()
    assert not Entry.objects.exists()


def test_a_missing_file_is_rejected_not_retried(db, site, served):
    sub = submission_for(f"{served.url}/nothing-here.tar.gz")
    assert pipeline.run(sub.pk) == "rejected"
    assert "404" in Submission.objects.get().error


def test_scores_are_stored_once_even_if_store_runs_twice(db, site, served):
    from evaluator.harness import EvalResult, TaskResult

    sub = submission_for(f"{served.url}/tiny.tar.gz")
    entry = Entry.objects.create(name="x", slug="x")
    result = EvalResult(
        tasks=[
            TaskResult(task=t, version=1, metrics={"acc": (0.5, 0.1)}, n=40, samples=[])
            for t in ("arc_easy", "boolq")
        ],
        provenance={"benchmark": "sample", "versions": {"lm_eval": "0.4.13"}},
    )
    first = pipeline.store(sub, entry, result)
    second = pipeline.store(Submission.objects.get(pk=sub.pk), entry, result)
    assert first.pk == second.pk
    assert TaskScore.objects.count() == 2 and EvaluationRun.objects.count() == 1


def test_the_watchdog_requeues_a_submission_whose_worker_died(db, site):
    sub = submission_for("https://127.0.0.1/m.tar.gz")
    stale = timezone.now() - timedelta(seconds=site.HEARTBEAT_STALE_S + 5)
    Submission.objects.filter(pk=sub.pk).update(status="evaluating", heartbeat=stale, attempts=1)
    assert tasks.watchdog()["requeued"] == 1
    assert Submission.objects.get().status == "pending"
    Submission.objects.filter(pk=sub.pk).update(
        status="evaluating", heartbeat=stale, attempts=site.MAX_ATTEMPTS
    )
    assert tasks.watchdog()["failed"] == 1
    sub.refresh_from_db()
    assert sub.status == "failed" and "stopped responding" in sub.error


def test_a_hub_revision_is_pinned_to_its_commit_at_submission(client, db, site, served, hub_online):
    """A fake Hub on 127.0.0.1 answers the revision API; the commit is what runs."""
    from tests.httpserver import App, respond, running

    commit = "a" * 40
    answer = respond(
        json.dumps(
            {
                "id": "org/tiny",
                "sha": commit,
                "siblings": [
                    {"rfilename": "config.json", "size": 10},
                    {"rfilename": "model.safetensors", "size": 10},
                ],
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    hub = App()
    hub.routes["/api/models/org/tiny/revision/main"] = answer
    hub.routes[f"/api/models/org/tiny/revision/{commit}"] = answer
    with running(hub):
        site.HF_ENDPOINT = hub.url()
        site.CHECKPOINT_ALLOWED_HOSTS = [*site.CHECKPOINT_ALLOWED_HOSTS, f"127.0.0.1:{hub.port}"]
        response = post(client, "org/tiny")
        assert response.status_code == 302, response.content.decode()[-2000:]
        sub = Submission.objects.get()
        assert (sub.repo_id, sub.revision, sub.commit) == ("org/tiny", "main", commit)
        assert sub.checkpoint_key == f"hub:org/tiny@{commit}"
        # The same repo at the same commit, however it is written, is one submission.
        again = post(client, f"https://huggingface.co/org/tiny/tree/{commit}")
        assert again["Location"] == f"/submissions/{sub.pk}/"
        assert Submission.objects.count() == 1


def test_checkpoint_errors_name_what_to_fix():
    with pytest.raises(checkpoint.CheckpointError, match="org/name"):
        checkpoint.parse_source("justaword")


def test_the_watchdog_gives_up_on_a_submission_that_keeps_failing(db, site):
    sub = submission_for("https://127.0.0.1/m.tar.gz")
    long_ago = timezone.now() - timedelta(seconds=site.REQUEUE_PENDING_AFTER_S + 5)
    Submission.objects.filter(pk=sub.pk).update(
        enqueued=long_ago, attempts=site.MAX_ATTEMPTS, error="retrying: connection refused"
    )
    assert tasks.watchdog()["failed"] == 1
    sub.refresh_from_db()
    assert sub.status == "failed"
    assert sub.error == f"gave up after {site.MAX_ATTEMPTS} attempts: retrying: connection refused"


def test_the_watchdog_resends_a_lost_message_once_per_period(db, site):
    sub = submission_for("https://127.0.0.1/m.tar.gz")
    long_ago = timezone.now() - timedelta(seconds=site.REQUEUE_PENDING_AFTER_S + 5)
    Submission.objects.filter(pk=sub.pk).update(enqueued=long_ago)
    assert tasks.watchdog()["resent"] == 1
    assert tasks.watchdog()["resent"] == 0  # enqueued just now
    assert Submission.objects.get().status == "pending"


def test_probes_nobody_answers_end_with_a_message_and_the_evaluation_stands(db, site):
    from leaderboard.models import DeviceProfile, Probe

    board = DeviceProfile.objects.create(slug="gone-board", name="Gone", active=True)
    sub = submission_for("https://127.0.0.1/m.tar.gz")
    stale = timezone.now() - timedelta(seconds=site.HEARTBEAT_STALE_S + 5)
    entry = Entry.objects.create(name="Gone", slug="gone")
    Submission.objects.filter(pk=sub.pk).update(status="probing", entry=entry)
    # As runstate.start_probing leaves it: sent once, no worker took it since.
    probe = Probe.objects.create(entry=entry, profile=board, submission=sub, sends=1)
    for _ in range(site.MAX_ATTEMPTS):
        Probe.objects.filter(pk=probe.pk).update(heartbeat=stale)
        assert tasks.watchdog()["probes"] == 1
    Probe.objects.filter(pk=probe.pk).update(heartbeat=stale)
    assert tasks.watchdog()["probes_given_up"] == 1
    sub.refresh_from_db()
    assert sub.status == "done" and sub.probes_pending == []
    assert "got no answer (is a worker consuming latency.gone-board?)" in sub.error


def test_behind_a_trusted_proxy_the_rate_limit_keys_on_the_forwarded_address(client, db, site):
    site.TRUSTED_PROXIES = 1
    site.SUBMISSION_RATE_LIMIT = 1
    ok = client.post(
        "/submit/",
        {"url": "https://127.0.0.1/a.tar.gz", "name": "A"},
        HTTP_X_FORWARDED_FOR="203.0.113.7",
    )
    assert ok.status_code == 302
    other = client.post(
        "/submit/",
        {"url": "https://127.0.0.1/b.tar.gz", "name": "B"},
        HTTP_X_FORWARDED_FOR="198.51.100.9",
    )
    assert other.status_code == 302  # another client behind the same proxy
    again = client.post(
        "/submit/",
        {"url": "https://127.0.0.1/c.tar.gz", "name": "C"},
        HTTP_X_FORWARDED_FOR="spoofed, 203.0.113.7",
    )
    assert again.status_code == 429  # a forged left-most entry does not help
    assert Submission.objects.get(name="A").client_ip == "203.0.113.7"


IMPERSONATIONS = [
    pytest.param("MobileLLM-125M", id="the-same-name"),
    pytest.param("mobilellm 125m", id="case-and-spacing"),
    pytest.param("\u041cobile LLM-125M", id="cyrillic-em"),
    pytest.param("\u039cobileLL\u039c-125\u039c", id="greek-mu"),
    pytest.param("\uff2d\uff4f\uff42\uff49\uff4c\uff45LLM-125M", id="fullwidth"),
    pytest.param("\U0001d40cobileLLM-125M", id="mathematical-bold"),
    pytest.param("MobiIeLLM-125M", id="capital-i-for-l"),
    pytest.param("M0bileLLM-125M", id="zero-for-o"),
    pytest.param("Mobi\u0301le LLM-125M", id="combining-accent"),
    pytest.param("M\u043e\u042c\u0456l\u0435LLM-125M", id="cyrillic-o-soft-sign-i-ie"),
]


@pytest.mark.parametrize("name", IMPERSONATIONS)
def test_a_name_that_can_be_taken_for_a_papers_entry_is_refused_on_the_form(
    client, site, reported, name
):
    response = post(client, "https://127.0.0.1/m.tar.gz", name=name)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="error-name"' in html
    assert "can be taken for the existing entry “MobileLLM-125M”" in html
    assert not Submission.objects.exists()


@pytest.mark.parametrize("name", IMPERSONATIONS[:4])
def test_a_name_that_can_be_taken_for_a_papers_entry_is_refused_by_the_api(
    client, site, reported, name
):
    body = {"url": "https://127.0.0.1/m.tar.gz", "name": name}
    response = client.post("/api/submissions", body, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("name: the name “") and "“MobileLLM-125M”" in error
    assert "choose a name of your own" in error
    assert not Submission.objects.exists()


@pytest.mark.parametrize("name", ["MobileLLM-99M", "MobileLLM-125M-distilled", "Mobile 125M"])
def test_names_that_only_resemble_an_entry_are_accepted(client, site, reported, name):
    assert post(client, "https://127.0.0.1/m.tar.gz", name=name).status_code == 302
    assert Submission.objects.get().name == name
