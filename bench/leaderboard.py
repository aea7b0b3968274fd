"""Server time of the leaderboard and its twins at 1,000, 10,000 and 100,000 models.

    .venv/bin/python bench/leaderboard.py [--database-url URL] [--repeats N]
                                          [--sizes 1000,10000,100000] [--json FILE]

Seeds a throwaway database (SQLite file under var/ by default; pass a PostgreSQL URL to
measure that) with N models x 8 tasks in bulk, then times `/`, `/leaderboard.csv` and
`/leaderboard.json` through Django's full request stack (middleware, views, templates,
streaming bodies consumed), and prints median / p95 and the ratio of the medians at the
largest and the smallest size. The first request after seeding rebuilds the precomputed
board (leaderboard/board.py): it is timed apart ("build") and not counted. --json FILE
writes {"results": [{"url", "models", "median_ms", "p95_ms"}, ...], "builds": [...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The project root replaces this script's folder on the path: bench/queue.py would shadow
# the standard library's queue module (which Django's imports need).
sys.path[0] = str(ROOT)
URLS = ["/", "/leaderboard.csv", "/leaderboard.json"]


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-only-" + os.urandom(24).hex())  # weak keys fail
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# Emptied with one statement each (children first): Entry.objects.delete() would load every
# row to send its signals, minutes at 100,000 models.
TABLES = [
    "leaderboard_boardrow",
    "leaderboard_board",
    "leaderboard_taskscore",
    "leaderboard_paperrow",
    "leaderboard_latencyresult",
    "leaderboard_probe",
    "leaderboard_submission",
    "leaderboard_evaluationrun",
    "leaderboard_entry",
]


def reset_and_seed(count: int) -> None:
    from django.db import connection

    from leaderboard.seeding import seed_synthetic

    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"DELETE FROM {table}")
    for start in range(0, count, 10_000):
        seed_synthetic(min(10_000, count - start), batch_size=5000)


def time_url(client, url: str, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        response = client.get(url, secure=True)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
        else:
            response.content  # noqa: B018 - the body is what we time
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return times[1:]  # the first request warms caches


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=f"sqlite:///{ROOT / 'var' / 'bench.sqlite3'}")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    setup_django(args.database_url)
    from django.db import connection
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, dict[str, list[float]]] = {}
    builds = []
    for size in sizes:
        start = time.perf_counter()
        reset_and_seed(size)
        seeded = time.perf_counter()
        assert client.get("/", secure=True).status_code == 200  # builds the board
        built = time.perf_counter()
        builds.append({"models": size, "seed_s": seeded - start, "build_s": built - seeded})
        print(f"{size}: seeded in {seeded - start:.1f} s, board built in {built - seeded:.1f} s")
        results[size] = {url: time_url(client, url, args.repeats) for url in URLS}
    if args.json:
        rows = [
            {
                "url": url,
                "models": size,
                "median_ms": round(statistics.median(times), 2),
                "p95_ms": round(p95(times), 2),
            }
            for size in sizes
            for url, times in results[size].items()
        ]
        data = {"database": connection.vendor, "repeats": args.repeats, "results": rows}
        Path(args.json).write_text(json.dumps({**data, "builds": builds}, indent=1) + "\n")
    print(f"database: {connection.vendor}; repeats: {args.repeats}; times in ms")
    print(
        f"{'url':<20}"
        + "".join(f"{f'median@{s}':>14}{f'p95@{s}':>12}" for s in sizes)
        + f"{'ratio':>8}"
    )
    for url in URLS:
        line = f"{url:<20}"
        for size in sizes:
            line += (
                f"{statistics.median(results[size][url]):>14.1f}{p95(results[size][url]):>12.1f}"
            )
        ratio = statistics.median(results[sizes[-1]][url]) / statistics.median(
            results[sizes[0]][url]
        )
        print(line + f"{ratio:>8.2f}")


if __name__ == "__main__":
    main()
