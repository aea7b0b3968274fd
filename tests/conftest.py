import os
import shutil

import pytest

# CI sets REQUIRE_SERVICES=1: there a missing Redis, PostgreSQL or Chromium fails the run
# instead of skipping the tests that need it.
REQUIRE_SERVICES = os.getenv("REQUIRE_SERVICES", "") == "1"
CHROMIUM = os.getenv("CHROMIUM", "/usr/bin/chromium")


def need(condition: bool, reason: str) -> None:
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def reported(db):
    """The paper's published results, imported as `make run` does."""
    from leaderboard.importing import import_reported

    return import_reported()


@pytest.fixture
def chromium_path():
    need(shutil.which(CHROMIUM) is not None, f"no Chromium at {CHROMIUM}")
    return CHROMIUM


TEST_REDIS_URL = os.getenv("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_up(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(autouse=True, scope="session")
def _celery_broker():
    """Tests never touch the developer's broker: a Redis database of their own when there is
    one, else an in-memory transport (unit tests only enqueue; nothing consumes)."""
    from config.celery import app

    app.conf.broker_url = TEST_REDIS_URL if redis_up(TEST_REDIS_URL) else "memory://"
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    yield


@pytest.fixture
def redis_url():
    import redis

    need(redis_up(TEST_REDIS_URL), f"no Redis at {TEST_REDIS_URL}")
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from evaluator.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def served(tmp_path_factory, tiny_model_dir):
    """A real HTTP server on 127.0.0.1 serving a folder; the tiny model's archive is in it."""
    import functools
    import tarfile
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    root = tmp_path_factory.mktemp("www")
    with tarfile.open(root / "tiny.tar.gz", "w:gz") as tar:
        tar.add(tiny_model_dir, arcname="tiny-llama")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.root = root
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
