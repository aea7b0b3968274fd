"""The queue end to end: N distinct tiny submissions through the API, then the wall time until
every one is `done`, with 1 and with 2 eval workers (issue 14 item 9).

Real everything: PostgreSQL, Redis, Celery worker processes (`-Q eval` each, one
`-Q latency.local-cpu` with probes on), the tiny checkpoints served over HTTP, the sample
set. Workers start (and report ready) before the clock starts, so each run counts their first,
cold evaluation as a real deployment's first batch would. Runs alternate 1, 2, 2, 1, ... so
the machine's changing load falls on both sides; the figure is the ratio of medians.

    python bench/queue.py [--submissions N] [--workers 1,2] [--repeats R] [--no-probes]
                          [--database-url URL] [--redis-url URL] [--json FILE]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
# This file's name shadows the standard library's queue module (torch imports it) while its
# folder is first on the path, as it is for `python bench/queue.py`: put the root there.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/leaderboard_queue_bench"
# The tests claim Redis databases 15 down to 1 under this key; we take one the same way.
REDIS_CLAIM_KEY = "ondevice-leaderboard:test-run"


def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to drop {name!r}: its name must contain 'bench'")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def claim_redis(base: str) -> str:
    import redis

    for number in range(15, 0, -1):
        url = f"{base.rstrip('/')}/{number}"
        if redis.Redis.from_url(url).set(REDIS_CLAIM_KEY, f"bench-{os.getpid()}", nx=True, ex=3600):
            return url
    sys.exit("no free Redis database")


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # one line per download would bury the results
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def build_archives(root: Path, count: int) -> None:
    """count tiny checkpoints with different weights (a seed each): distinct content, so
    none is linked to another as a duplicate."""
    from evaluator.tinymodel import TinySpec, build_tiny_model

    for i in range(count):
        if (root / f"tiny-{i}.tar.gz").exists():
            continue
        model = build_tiny_model(root / "models" / f"tiny-{i}", TinySpec(seed=1000 + i))
        with tarfile.open(root / f"tiny-{i}.tar.gz", "w:gz") as tar:
            tar.add(model, arcname=f"tiny-{i}")


def start_worker(env: dict, queues: str, name: str, log_dir: Path) -> subprocess.Popen:
    log = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    cmd = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO",
           "--concurrency=1", f"--queues={queues}", f"--hostname={name}@%h",
           "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    proc.log_path = log_dir / f"{name}.log"
    return proc


def wait_ready(procs, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        while b" ready." not in proc.log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"worker did not start:\n{proc.log_path.read_text()[-3000:]}")
            time.sleep(0.2)


def stop(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def one_run(args, env, workers: int, run_no: int, port: int, log_dir: Path) -> dict:
    import redis
    from django.test import Client

    from leaderboard.models import Entry, LatencyResult, Submission

    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    redis.Redis.from_url(env["REDIS_URL"]).set(REDIS_CLAIM_KEY, "bench", ex=3600)
    # A clean slate: the previous run's entries (so nothing is a duplicate) and probes.
    LatencyResult.objects.filter(kind="measured").delete()
    Submission.objects.all().delete()
    Entry.objects.filter(runs__kind="measured").delete()
    procs = [start_worker(env, "eval", f"eval{i}-r{run_no}", log_dir) for i in range(workers)]
    if args.probes:
        procs.append(start_worker(env, "latency.local-cpu", f"latency-r{run_no}", log_dir))
    try:
        wait_ready(procs)
        load_before = os.getloadavg()[0]
        client = Client()
        started = time.monotonic()
        for i in range(args.submissions):
            body = {"url": f"http://127.0.0.1:{port}/tiny-{i}.tar.gz", "name": f"Queue {i}"}
            response = client.post("/api/submissions", body, content_type="application/json")
            if response.status_code != 201:
                sys.exit(f"submission refused: {response.status_code} {response.content[:300]}")
        evaluated = None
        while True:
            statuses = list(Submission.objects.values_list("status", flat=True))
            if evaluated is None and all(s in ("probing", "done") for s in statuses):
                evaluated = time.monotonic() - started  # every score on the board
            if all(s in Submission.ENDED for s in statuses):
                break
            if time.monotonic() - started > args.timeout:
                sys.exit(f"timed out with statuses {statuses}")
            time.sleep(0.25)
        wall = time.monotonic() - started
    finally:
        stop(procs)
    bad = list(Submission.objects.exclude(status="done").values_list("pk", "status", "error"))
    if bad:
        sys.exit(f"not every submission ended done: {bad}")
    stable = list(
        LatencyResult.objects.filter(kind="measured").values_list(
            "decode_stable", "environment__under_load"
        )
    )
    return {
        "workers": workers,
        "wall_s": round(wall, 1),
        "scores_s": round(evaluated or wall, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "probes": len(stable),
        "unstable": sum(1 for s, _ in stable if s is False),
        "under_load": sum(1 for _, u in stable if u),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=8)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-probes", dest="probes", action="store_false")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]

    var = Path(tempfile.mkdtemp(prefix="queue-bench-"))
    www = ROOT / "var" / "bench-queue"
    www.mkdir(parents=True, exist_ok=True)
    build_archives(www, args.submissions)
    server, port = serve(www)
    recreate_database(args.database_url)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=claim_redis(args.redis_url),
        VAR_DIR=str(var),  # WORK_DIR and with it the host lock: shared by every worker here
        EVAL_DATA="sample",
        CHECKPOINT_ALLOWED_HOSTS=f"127.0.0.1:{port}",
        SUBMISSION_RATE_LIMIT="1000000",  # the queue is measured, not the rate limit
        ALLOWED_HOSTS="testserver",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from leaderboard.models import DeviceProfile

    profile = DeviceProfile.objects.get(slug="local-cpu")
    DeviceProfile.objects.filter(slug="local-cpu").update(active=args.probes)
    order = [c for r in range(args.repeats) for c in (counts if r % 2 == 0 else counts[::-1])]
    results = []
    try:
        for run_no, workers in enumerate(order):
            result = one_run(args, env, workers, run_no, port, var)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        server.shutdown()
    medians = {
        c: statistics.median(r["wall_s"] for r in results if r["workers"] == c) for c in counts
    }
    summary = {
        "submissions": args.submissions,
        "probes": args.probes,
        "profile_threads": profile.threads,
        "cpu_count": os.cpu_count(),
        "median_wall_s": medians,
        "ratio": round(medians[counts[-1]] / medians[counts[0]], 2),
        "runs": results,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
