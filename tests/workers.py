"""Start real Celery worker processes against the test database and the test Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def worker_database_url() -> str:
    from tests.conftest import need

    s = connection.settings_dict
    need(
        s["ENGINE"] == "django.db.backends.postgresql",
        "worker tests need PostgreSQL (set DATABASE_URL=postgres://...)",
    )
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def worker_env(redis_url: str, tmp_path: Path, **extra: str) -> dict:
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        DATABASE_URL=worker_database_url(),
        REDIS_URL=redis_url,
        CHECKPOINT_ALLOWED_HOSTS=",".join(settings.CHECKPOINT_ALLOWED_HOSTS),  # the test's
        EVAL_DATA="sample",
        WORK_DIR=str(tmp_path / "work"),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextmanager
def celery_worker(redis_url: str, tmp_path: Path, queues: str, name: str = "w1", **extra):
    log = tmp_path / f"worker-{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                "--concurrency=1",
                f"--queues={queues}",
                f"--hostname={name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=worker_env(redis_url, tmp_path, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc.log = log
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(predicate, timeout: float, what: str, proc=None, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"worker exited ({proc.returncode}) while waiting for {what}:\n"
                + proc.log.read_text()[-4000:]
            )
        time.sleep(interval)
    log = proc.log.read_text()[-4000:] if proc is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{log}")
