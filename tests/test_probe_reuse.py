"""Probes reuse the checkpoint an evaluation verified (issue 10, item 12): the kept copy, its
budget and housekeeping, and `manage.py evaluate` probing here unless a worker listens."""

import os
import shutil
from io import StringIO

import pytest
from django.core.management import call_command

from evaluator.checkpoint import cache, content_hash
from leaderboard import tasks
from leaderboard.management.commands.evaluate import latency_queues_listened
from leaderboard.models import DeviceProfile, LatencyResult, Submission
from tests.factories import make_entry
from tests.workers import celery_worker, wait_for


def cached_copy(tiny_model_dir, tmp_path, name="copy"):
    """A copy of the tiny model as fetch() leaves one, and its content hash."""
    copy = shutil.copytree(tiny_model_dir, tmp_path / name)
    return copy, content_hash(copy)


def local_cpu():
    DeviceProfile.objects.update_or_create(
        slug="local-cpu",
        defaults={"name": "Local CPU", "threads": 1, "active": True, "reported": False},
    )


def test_a_kept_checkpoint_is_handed_out_as_links_and_an_altered_one_is_dropped(
    tiny_model_dir, tmp_path
):
    copy, sha = cached_copy(tiny_model_dir, tmp_path)
    root = tmp_path / "cache"
    assert cache.keep(copy, sha, root, budget_bytes=10**9)
    assert not copy.exists() and cache.cached(root) == [sha]
    out = cache.checkout(sha, root, tmp_path / "probe" / "model")
    assert content_hash(out) == sha
    config = out / "config.json"
    assert os.stat(config).st_ino == os.stat(root / sha / "config.json").st_ino
    # Changed on disk since it was verified: never handed out, and gone from the cache.
    with open(root / sha / "config.json", "a") as fh:
        fh.write(" ")
    assert cache.checkout(sha, root, tmp_path / "probe2" / "model") is None
    assert cache.cached(root) == []


def test_the_cache_keeps_within_its_budget_least_recently_used_out_first(tiny_model_dir, tmp_path):
    root = tmp_path / "cache"
    size = sum(p.stat().st_size for p in tiny_model_dir.iterdir())
    older, sha_old = cached_copy(tiny_model_dir, tmp_path, "old")
    cache.keep(older, sha_old, root, budget_bytes=3 * size)
    newer, _ = cached_copy(tiny_model_dir, tmp_path, "new")
    (newer / "config.json").write_text((newer / "config.json").read_text() + " ")
    sha_new = content_hash(newer)
    os.utime(root / sha_old, (1, 1))  # long unused
    # Two fit a budget of three; with room for one only, the one used last stays.
    assert cache.keep(newer, sha_new, root, budget_bytes=int(1.5 * size))
    assert cache.cached(root) == [sha_new]
    # A model larger than the whole budget is not kept at all.
    third, sha_third = cached_copy(tiny_model_dir, tmp_path, "third")
    assert not cache.keep(third, sha_third, root, budget_bytes=size // 2)
    assert third.exists()


def test_housekeeping_drops_the_checkpoints_of_deleted_models(
    db, settings, tiny_model_dir, tmp_path
):
    settings.WORK_DIR = tmp_path / "work"
    root = settings.WORK_DIR / "checkpoints"
    kept, sha_kept = cached_copy(tiny_model_dir, tmp_path, "kept")
    gone, _ = cached_copy(tiny_model_dir, tmp_path, "gone")
    (gone / "config.json").write_text((gone / "config.json").read_text() + " ")
    sha_gone = content_hash(gone)
    cache.keep(kept, sha_kept, root, 10**9)
    cache.keep(gone, sha_gone, root, 10**9)
    make_entry("Still here", content_sha256=sha_kept)
    counts = tasks.watchdog()
    assert counts["checkpoints_dropped"] == 1
    assert cache.cached(root) == [sha_kept]
    # Over budget (CHECKPOINT_CACHE_BYTES): the next round drops what no longer fits.
    settings.CHECKPOINT_CACHE_BYTES = 1
    assert tasks.watchdog()["checkpoints_dropped"] == 1 and cache.cached(root) == []


@pytest.fixture
def terminal(settings, tmp_path, served):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.WORK_DIR = tmp_path / "work"
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}"]
    settings.EVAL_DATA = "sample"
    settings.PROBE_BUDGET_S = 3
    local_cpu()
    return settings


def evaluate(served, *flags) -> str:
    out = StringIO()
    args = ["--tasks", "boolq", "--limit", "5", *flags]
    call_command("evaluate", f"{served.url}/tiny.tar.gz", *args, stdout=out)
    return out.getvalue()


def test_with_no_latency_worker_evaluate_probes_here_from_the_kept_checkpoint(db, terminal, served):
    downloads = len(served.app.requests)
    out = evaluate(served)
    assert "Measuring latency on local-cpu here" in out
    sub = Submission.objects.get()
    assert sub.status == "done" and sub.probes.get().status == "done"
    assert LatencyResult.objects.get(entry=sub.entry).execute_ms > 0
    assert len(served.app.requests) == downloads + 1  # the evaluation's download only


@pytest.mark.integration
def test_a_listening_latency_worker_gets_the_probe_and_reads_the_kept_checkpoint(
    transactional_db, redis_url, terminal, served, tmp_path
):
    # The worker may not download (no allow-list): it can only measure the kept copy.
    with celery_worker(
        redis_url,
        tmp_path,
        "latency.local-cpu",
        name="lat",
        CHECKPOINT_ALLOWED_HOSTS="",
        PROBE_BUDGET_S="3",
    ) as worker:
        wait_for(lambda: "latency.local-cpu" in latency_queues_listened(), 60, "the worker", worker)
        downloads = len(served.app.requests)
        out = evaluate(served)
        assert "worker on latency.local-cpu" in out
        assert "Measuring latency" not in out
        sub = Submission.objects.get()
        wait_for(
            lambda: Submission.objects.get(pk=sub.pk).status == "done",
            240,
            "the worker's probe",
            worker,
        )
    assert sub.probes.get().status == "done"
    assert LatencyResult.objects.get(entry=sub.entry).execute_ms > 0
    assert len(served.app.requests) == downloads + 1
