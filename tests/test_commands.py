"""The terminal path: manage.py evaluate / probe / make_demo_checkpoint / export_datasets."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from leaderboard.models import DeviceProfile, LatencyResult, Submission


@pytest.fixture
def site(settings, tmp_path, served):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.WORK_DIR = tmp_path / "work"
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}"]  # that server only
    settings.EVAL_DATA = "sample"
    settings.SITE_URL = "http://127.0.0.1:8000"
    DeviceProfile.objects.filter(reported=False).update(active=False)
    return settings


def test_evaluate_runs_the_pipeline_in_the_foreground_and_prints_the_page(db, site, served, capsys):
    out = StringIO()
    call_command(
        "evaluate",
        f"{served.url}/tiny.tar.gz",
        "--name",
        "Terminal tiny",
        "--tasks",
        "arc_easy",
        "boolq",
        "--limit",
        "10",
        stdout=out,
    )
    sub = Submission.objects.get()
    assert sub.status == "done" and sub.tasks == ["arc_easy", "boolq"]
    assert out.getvalue().strip().endswith(f"http://127.0.0.1:8000/models/{sub.entry.slug}/")
    run = sub.run
    # The sample set with a limit is still labelled the sample set, the limit recorded.
    assert run.benchmark == "sample" and not run.ranked and run.provenance["limit"] == 10
    assert set(run.scores.values_list("n", flat=True)) == {10}
    err = capsys.readouterr().err
    assert "boolq" in err  # the progress bar, and only ours: no tqdm bar ("10%|##  |")
    assert "%|" not in err and "it/s]" not in err
    # Twice: nothing runs again.
    again = StringIO()
    call_command(
        "evaluate",
        f"{served.url}/tiny.tar.gz",
        "--tasks",
        "arc_easy",
        "boolq",
        "--limit",
        "10",
        stdout=again,
    )
    assert "Already submitted" in again.getvalue() and Submission.objects.count() == 1


def test_evaluate_runs_the_demo_make_run_prints_with_no_allow_list_set(db, site, tmp_path):
    from leaderboard.demo import build_demo
    from tests.httpserver import App, running

    site.CHECKPOINT_ALLOWED_HOSTS = []  # what a fresh terminal has
    build_demo()
    # The site serves MEDIA_ROOT (tmp_path / "media") at /media/, as `make run` does.
    with running(App(root=tmp_path)) as app:
        url = app.url("/media/demo/demo-tiny-llama.tar.gz")
        call_command("evaluate", url, "--tasks", "arc_easy", "--limit", "5", stdout=StringIO())
        assert Submission.objects.get().status == "done"
        # Exactly the demo: another file on the same loopback port is still refused.
        (tmp_path / "media" / "other.tar.gz").write_bytes(b"x")
        with pytest.raises(CommandError, match="private, loopback"):
            call_command("evaluate", app.url("/media/other.tar.gz"), stdout=StringIO())


def test_evaluate_refuses_a_bad_url_with_its_reason(db, site):
    with pytest.raises(CommandError, match="169.254.169.254"):
        call_command("evaluate", "https://169.254.169.254/m.tar.gz")


def test_probe_measures_an_evaluated_model_from_the_terminal(db, site, served):
    call_command(
        "evaluate",
        f"{served.url}/tiny.tar.gz",
        "--name",
        "Probe tiny",
        "--tasks",
        "boolq",
        "--limit",
        "5",
        stdout=StringIO(),
    )
    sub = Submission.objects.get()
    DeviceProfile.objects.update_or_create(
        slug="local-cpu",
        defaults={"name": "Local CPU", "threads": 1, "active": True, "reported": False},
    )
    out = StringIO()
    call_command("probe", sub.entry.slug, "--profile", "local-cpu", stdout=out)
    assert "ms/token" in out.getvalue()
    result = LatencyResult.objects.get(entry=sub.entry)
    assert result.kind == "measured" and result.execute_ms > 0
    with pytest.raises(CommandError, match="no model with slug"):
        call_command("probe", "nope")


def test_the_demo_checkpoint_is_built_once_and_offered_on_the_form(client, db, site):
    call_command("make_demo_checkpoint", stdout=StringIO())
    from leaderboard.demo import demo_path

    built = demo_path().stat().st_mtime_ns
    call_command("make_demo_checkpoint", stdout=StringIO())
    assert demo_path().stat().st_mtime_ns == built
    html = client.get("/submit/").content.decode()
    assert "http://testserver/media/demo/demo-tiny-llama.tar.gz" in html
    # The site serves the file itself, so the demo works offline.
    response = client.get("/media/demo/demo-tiny-llama.tar.gz")
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:2] == b"\x1f\x8b"  # gzip


def test_export_datasets_says_what_is_missing(db, tmp_path):
    with pytest.raises(CommandError, match="export failed"):
        call_command(
            "export_datasets",
            str(tmp_path / "out"),
            "--tasks",
            "boolq",
            "--cache-dir",
            str(tmp_path / "empty-cache"),
        )


def test_the_model_json_carries_provenance_of_a_measured_run(client, db, site, served):
    call_command(
        "evaluate",
        f"{served.url}/tiny.tar.gz",
        "--name",
        "Json tiny",
        "--tasks",
        "piqa",
        "--limit",
        "5",
        stdout=StringIO(),
    )
    slug = Submission.objects.get().entry.slug
    data = json.loads(client.get(f"/models/{slug}.json").content)
    run = data["runs"][0]
    assert run["provenance"] == "measured" and run["benchmark"] == "sample"
    details = run["details"]
    assert details["versions"]["lm_eval"] == "0.4.13" and details["num_fewshot"] == 0
    assert details["limit"] == 5 and details["dtype"] == "float32"
    assert {s["metric"] for s in run["scores"]} == {"acc", "acc_norm"}
    assert run["samples_url"].endswith(".jsonl.gz")
    # What the run cost, and which engine produced the numbers (the default: hf-trie).
    cost = run["cost"]
    assert cost["engine"] == "hf-trie" and cost["engine_setting"] == "fast"
    assert cost["requests"] == 10 and cost["tokens_padded"] > 0 and cost["wall_s"] > 0
    assert [t["task"] for t in cost["tasks"]] == ["piqa"]
    html = client.get(f"/models/{slug}/").content.decode()
    assert "Evaluated in" in html and "engine <code>hf-trie</code>" in html


def test_evaluate_probes_in_the_foreground_so_the_submission_ends_done(db, site, served):
    DeviceProfile.objects.update_or_create(
        slug="local-cpu",
        defaults={"name": "Local CPU", "threads": 1, "active": True, "reported": False},
    )
    out = StringIO()
    call_command(
        "evaluate",
        f"{served.url}/tiny.tar.gz",
        "--name",
        "Foreground tiny",
        "--tasks",
        "boolq",
        "--limit",
        "5",
        "--probe",
        stdout=out,
    )
    sub = Submission.objects.get()
    assert sub.status == "done" and "Measuring latency on local-cpu" in out.getvalue()
    assert LatencyResult.objects.get(entry=sub.entry).execute_ms > 0
    assert sub.probes.get().status == "done"


def test_evaluate_no_probe_ends_done_and_a_manual_probe_reads_the_kept_checkpoint(db, site, served):
    DeviceProfile.objects.update_or_create(
        slug="local-cpu",
        defaults={"name": "Local CPU", "threads": 1, "active": True, "reported": False},
    )
    out = StringIO()
    call_command(
        "evaluate",
        f"{served.url}/tiny.tar.gz",
        "--tasks",
        "boolq",
        "--limit",
        "5",
        "--no-probe",
        stdout=out,
    )
    sub = Submission.objects.get()
    # Done, not probing for ever when no worker comes: the probe is listed as pending.
    assert sub.status == "done" and sub.probes.get().status == "pending"
    assert not LatencyResult.objects.filter(entry=sub.entry).exists()
    assert f"manage.py probe {sub.entry.slug} --profile local-cpu" in out.getvalue()
    # The manual probe reads the checkpoint the evaluation verified: no download, so no
    # allow-list to export again (the server would be refused as 127.0.0.1 now).
    site.CHECKPOINT_ALLOWED_HOSTS = []
    downloads = len(served.app.requests)
    call_command("probe", sub.entry.slug, "--profile", "local-cpu", stdout=StringIO())
    assert len(served.app.requests) == downloads
    sub.refresh_from_db()
    assert sub.status == "done" and sub.probes.get().status == "done"
    assert LatencyResult.objects.get(entry=sub.entry).execute_ms > 0


def test_a_second_probe_of_a_model_a_worker_is_probing_is_refused_with_a_message(db):
    from leaderboard.models import Probe
    from tests.factories import make_entry

    profile, _ = DeviceProfile.objects.update_or_create(
        slug="local-cpu",
        defaults={"name": "Local CPU", "threads": 1, "active": True, "reported": False},
    )
    entry = make_entry("Busy tiny")
    Probe.objects.create(entry=entry, profile=profile, status="running")
    with pytest.raises(CommandError, match="being probed on local-cpu right now"):
        call_command("probe", entry.slug, "--profile", "local-cpu", stdout=StringIO())
    assert Probe.objects.get().status == "running"  # the worker's probe is left alone
