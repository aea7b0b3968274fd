"""Load test: requests/s and p50/p99 of `/`, `/leaderboard.csv` and `POST /submit/` served
by gunicorn on 127.0.0.1 with 10,000 models loaded, driven by wrk; asserts zero 5xx.

    .venv/bin/python bench/load.py [--database-url URL] [--duration S] [--connections N]

The database is dropped and created again (PostgreSQL) or deleted (SQLite), so its name must
say it is throwaway (contain "load", "bench" or "throwaway"). Default: the PostgreSQL
database `leaderboard_load` on postgres://postgres@127.0.0.1:5432, or var/load.sqlite3 when
PostgreSQL does not answer. The script migrates, imports the paper's results, seeds N models
x 8 tasks (leaderboard.seeding), and starts gunicorn (2 workers x 4 threads by default)
on a free 127.0.0.1 port with production settings: DEBUG=false, a SECRET_KEY,
ALLOWED_HOSTS=127.0.0.1, SECURE_SSL_REDIRECT=false, no REDIS_URL (Celery's filesystem broker
under a temporary VAR_DIR, so a submission's message is only queued: no worker runs) and
CHECKPOINT_ALLOWED_HOSTS=127.0.0.1 so archive URLs on 127.0.0.1 pass the form's host check
(an IP literal: no DNS, no download at submission).

POST /submit/ posts the real form (CSRF token and cookie fetched once) with a new archive URL
every request, so every request that succeeds creates a Submission row and queues a message
(answer: 302 to the submission's page). By default SUBMISSION_RATE_LIMIT is raised so that
the creation path is what gets measured; --keep-rate-limit keeps the real limit (5 per 10
minutes per address), and the 429s are then counted apart.

Exit status: 0 when no endpoint answered a 5xx and no request timed out or lost its
connection; 1 otherwise; 2 when the setup failed (wrk missing, server did not start).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from evaluator.machine import cpu_model  # noqa: E402

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/leaderboard_load"
DEFAULT_SQLITE = f"sqlite:///{ROOT / 'var' / 'load.sqlite3'}"
THROWAWAY = ("load", "bench", "throwaway")
RAISED_RATE_LIMIT = 1_000_000
EVALUATE = b"leaderboard.tasks.evaluate_submission"

# Status counts per thread (each wrk thread has its own Lua state), summed in done().
LUA_COMMON = r"""
threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function response(status, headers, body)
  local key = "status_" .. status
  _G[key] = (_G[key] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("LOAD requests %d\n", summary.requests))
  io.write(string.format("LOAD duration_us %d\n", summary.duration))
  io.write(string.format("LOAD bytes %d\n", summary.bytes))
  for _, k in ipairs({"connect", "read", "write", "status", "timeout"}) do
    io.write(string.format("LOAD error_%s %d\n", k, summary.errors[k]))
  end
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("LOAD p%s_us %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("LOAD mean_us %d\n", latency.mean))
  io.write(string.format("LOAD max_us %d\n", latency.max))
  local codes = {}
  for _, t in ipairs(threads) do
    for code = 100, 599 do
      local n = t:get("status_" .. code)
      if n then codes[code] = (codes[code] or 0) + n end
    end
  end
  for code, n in pairs(codes) do
    io.write(string.format("LOAD status_%d %d\n", code, n))
  end
end
"""

LUA_POST = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "csrftoken=%(cookie)s"
counter = 0

function request()
  counter = counter + 1
  local id = "%(run)s-" .. tid .. "-" .. counter
  local body = "csrfmiddlewaretoken=%(token)s"
    .. "&url=https%%3A%%2F%%2F127.0.0.1%%2Fload%%2F" .. id .. ".tar.gz"
    .. "&name=Load+" .. id .. "&notes="
  return wrk.format(nil, nil, nil, body)
end
"""


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def db_name(url: str) -> str:
    parts = urlparse(url)
    if parts.scheme == "sqlite":
        return Path(unquote(parts.path)).name
    return unquote(parts.path.lstrip("/"))


def postgres_reachable(url: str) -> bool:
    import psycopg

    parts = urlparse(url)
    try:
        with psycopg.connect(**_pg_args(parts, "postgres"), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _pg_args(parts, dbname: str) -> dict:
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or "") or None,
        "dbname": dbname,
    }


def recreate_database(url: str) -> None:
    """Drop and create the throwaway database (PostgreSQL) or delete the file (SQLite)."""
    name = db_name(url)
    if not any(word in name.lower() for word in THROWAWAY):
        sys.exit(
            f"refusing to wipe database {name!r}: its name must contain one of {THROWAWAY} "
            "(this benchmark drops and recreates it)"
        )
    parts = urlparse(url)
    if parts.scheme == "sqlite":
        path = Path(unquote(parts.path[1:] if parts.path.startswith("//") else parts.path))
        path = path if path.is_absolute() else ROOT / path
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(**_pg_args(parts, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def server_env(args, database_url: str, var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY="load-benchmark-only-" + os.urandom(16).hex(),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        VAR_DIR=str(var_dir),
        CHECKPOINT_ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
    )
    if not args.keep_rate_limit:
        env["SUBMISSION_RATE_LIMIT"] = str(RAISED_RATE_LIMIT)
    return env


def seed(models: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from leaderboard.models import Entry, TaskScore
    from leaderboard.seeding import seed_synthetic

    start = time.perf_counter()
    call_command("migrate", verbosity=0)
    call_command("import_reported", verbosity=0, stdout=open(os.devnull, "w"))
    for first in range(0, models, 1000):
        seed_synthetic(min(1000, models - first))
    info = {
        "entries": Entry.objects.count(),
        "scores": TaskScore.objects.count(),
        "seconds": round(time.perf_counter() - start, 1),
        "vendor": connection.vendor,
        "server": _db_version(connection),
    }
    connection.close()
    return info


def _db_version(connection) -> str:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return "PostgreSQL " + cursor.fetchone()[0]
    import sqlite3

    return "SQLite " + sqlite3.sqlite_version


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(args, env: dict, port: int, logdir: Path) -> subprocess.Popen:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    cmd = [
        str(gunicorn if gunicorn.exists() else "gunicorn"),
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--access-logfile",
        str(logdir / "access.log"),
        "--error-logfile",
        str(logdir / "error.log"),
    ]
    out = open(logdir / "gunicorn.out", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}; see {logdir}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/leaderboard.json?q=x", timeout=5):
                return proc
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"gunicorn did not answer on 127.0.0.1:{port} within 60 s; see {logdir}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serial_ms(base: str, path: str, repeats: int = 3) -> float:
    """Median time of one request at a time (after a warm-up request), for comparison."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with urllib.request.urlopen(base + path, timeout=120) as response:
            response.read()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times[1:])[len(times[1:]) // 2]


def csrf(base: str) -> tuple[str, str]:
    """The csrftoken cookie and the form's csrfmiddlewaretoken, from GET /submit/."""
    with urllib.request.urlopen(base + "/submit/", timeout=60) as response:
        html = response.read().decode()
        cookies = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if "csrftoken" not in cookies or not token:
        raise RuntimeError("GET /submit/ gave no CSRF cookie or token")
    return cookies["csrftoken"].value, token.group(1)


def run_wrk(args, url: str, script: Path) -> dict:
    cmd = [
        "wrk",
        "--threads",
        str(min(args.wrk_threads, args.connections)),
        "--connections",
        str(args.connections),
        "--duration",
        f"{args.duration}s",
        "--timeout",
        f"{args.timeout}s",
        "--latency",
        "--script",
        str(script),
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    result: dict = {"statuses": {}, "wrk_output": done.stdout}
    for line in done.stdout.splitlines():
        if not line.startswith("LOAD "):
            continue
        _, key, value = line.split()
        if key.startswith("status_"):
            result["statuses"][int(key[7:])] = int(value)
        else:
            result[key] = float(value)
    seconds = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / seconds if seconds else 0.0
    result["socket_errors"] = int(sum(result[f"error_{k}"] for k in ("connect", "read", "write")))
    result["timeouts"] = int(result["error_timeout"])
    result["5xx"] = sum(n for code, n in result["statuses"].items() if code >= 500)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help=f"default {DEFAULT_PG}")
    parser.add_argument("--duration", type=int, default=20, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=30, help="wrk request timeout, s")
    parser.add_argument("--keep-rate-limit", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary VAR_DIR")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu) or "
            "`brew install wrk`, then run this again.",
            file=sys.stderr,
        )
        return 2
    database_url = args.database_url
    if database_url is None:
        if postgres_reachable(DEFAULT_PG):
            database_url = DEFAULT_PG
        else:
            print("PostgreSQL on 127.0.0.1:5432 does not answer: using SQLite under var/.")
            database_url = DEFAULT_SQLITE
    recreate_database(database_url)

    var_dir = Path(tempfile.mkdtemp(prefix="leaderboard-load-"))
    env = server_env(args, database_url, var_dir)
    os.environ.update(env)
    os.environ.pop("REDIS_URL", None)
    load_start = loadavg()
    print(f"seeding {args.models} models into {db_name(database_url)} ...", flush=True)
    seeded = seed(args.models)
    print(
        f"seeded: {seeded['entries']} entries, {seeded['scores']} scores in "
        f"{seeded['seconds']} s ({seeded['server']})",
        flush=True,
    )

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        server = start_gunicorn(args, env, port, var_dir)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 2
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    results: dict[str, dict] = {}
    try:
        serial = {path: serial_ms(base, path) for path in ("/", "/leaderboard.csv", "/submit/")}
        cookie, token = csrf(base)
        scripts = {
            "GET /": ("/", LUA_COMMON),
            "GET /leaderboard.csv": ("/leaderboard.csv", LUA_COMMON),
            "POST /submit/": (
                "/submit/",
                LUA_COMMON + LUA_POST % {"cookie": cookie, "token": token, "run": run_id},
            ),
        }
        for name, (path, lua) in scripts.items():
            script = var_dir / f"{re.sub(r'[^a-z]+', '_', name.lower())}.lua"
            script.write_text(lua)
            before = loadavg()
            print(f"{name}: {args.duration} s, {args.connections} connections ...", flush=True)
            results[name] = run_wrk(args, base + path, script)
            results[name]["loadavg_before"] = before
            results[name]["serial_get_ms"] = serial[path]
    finally:
        stop(server)

    # Every 302 of the POST run must be a new row with its message queued.
    import django.db
    from django.db import connection

    from leaderboard.models import Submission

    django.db.close_old_connections()
    rows = Submission.objects.filter(url__contains=f"/load/{run_id}-")
    created = rows.count()
    pending = rows.filter(status=Submission.Status.PENDING).count()
    connection.close()
    queue = var_dir / "broker" / "queue"
    # Evaluation messages only: the leaderboard's rebuild message (one after the seeding)
    # shares the broker's folder.
    queued = sum(
        1 for m in (queue.iterdir() if queue.exists() else []) if EVALUATE in m.read_bytes()
    )
    worker_timeouts = (var_dir / "error.log").read_text().count("WORKER TIMEOUT")

    environment = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "loadavg_at_start": load_start,
        "loadavg_at_end": loadavg(),
        "python": platform.python_version(),
        "django": _version("django"),
        "gunicorn": _version("gunicorn"),
        "wrk": _wrk_version(),
        "database": seeded["server"],
        "models": seeded["entries"],
        "gunicorn_config": f"{args.workers} workers x {args.threads} threads",
        "wrk_config": f"{args.connections} connections, {args.wrk_threads} threads, "
        f"{args.duration} s, timeout {args.timeout} s",
        "rate_limit": "real (5 per 600 s)"
        if args.keep_rate_limit
        else f"raised to {RAISED_RATE_LIMIT}",
    }
    print()
    for key, value in environment.items():
        print(f"{key:>18}: {value}")
    print()
    print(
        f"{'endpoint':<20}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'requests':>10}{'1-by-1':>9}  statuses / errors   (load avg before)"
    )
    print(
        "(ms; 1-by-1: median of 3 sequential GETs of the same path before the run, "
        "for comparison; for POST /submit/ the GET of the form)"
    )
    failed = []
    for name, r in results.items():
        statuses = " ".join(f"{code}:{n}" for code, n in sorted(r["statuses"].items()))
        errors = ""
        if r["socket_errors"] or r["timeouts"]:
            errors = f" socket errors:{r['socket_errors']} timeouts:{r['timeouts']}"
        print(
            f"{name:<20}{r['rps']:>9.1f}{r['p50_us'] / 1000:>9.1f}{r['p90_us'] / 1000:>9.1f}"
            f"{r['p99_us'] / 1000:>9.1f}{r['max_us'] / 1000:>9.1f}{int(r['requests']):>10}"
            f"{r['serial_get_ms']:>9.1f}  "
            f"{statuses}{errors}   ({r['loadavg_before']})"
        )
        if r["5xx"]:
            failed.append(f"{name}: {r['5xx']} responses with a 5xx status")
        if r["socket_errors"] or r["timeouts"]:
            failed.append(
                f"{name}: {r['socket_errors']} socket errors, {r['timeouts']} timeouts "
                "(a killed worker shows up here, not as a 5xx)"
            )
    post = results["POST /submit/"]
    print(
        f"\nPOST /submit/: {post['statuses'].get(302, 0)} answered 302; {created} submission "
        f"rows created ({pending} pending), {queued} messages queued on the filesystem broker"
        + (f"; {post['statuses'].get(429, 0)} rate-limited (429)" if args.keep_rate_limit else "")
    )
    # wrk stops on time with up to one request per connection in flight: the server may
    # have created those rows without wrk counting their answers.
    if not 0 <= created - post["statuses"].get(302, 0) <= args.connections or queued != created:
        failed.append("POST /submit/: 302s, new rows and queued messages do not match")
    if worker_timeouts:
        failed.append(f"gunicorn killed {worker_timeouts} workers (WORKER TIMEOUT)")
    if args.json:
        for r in results.values():
            r.pop("wrk_output", None)
        args.json.write_text(
            json.dumps(
                {
                    "environment": environment,
                    "results": results,
                    "submissions": {"created": created, "queued": queued},
                },
                indent=2,
            )
        )
    if args.keep:
        print(f"kept {var_dir} (logs, wrk scripts, broker queue)")
    else:
        shutil.rmtree(var_dir, ignore_errors=True)
    if failed:
        print("\nFAILED:\n  " + "\n  ".join(failed))
        return 1
    print("\nOK: no 5xx, no socket errors or timeouts on any endpoint.")
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].split(" [")[0] if first else "?"


if __name__ == "__main__":
    sys.exit(main())
