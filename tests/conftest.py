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


# Two suites may run at once on one machine (two checkouts, or a fresh-clone check beside a
# developer's run): everything they share is named after this run, never a constant.
RUN_ID = os.getenv("TEST_RUN_ID") or str(os.getpid())
REDIS_BASE_URL = os.getenv("TEST_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_CLAIM_KEY = "ondevice-leaderboard:test-run"
REDIS_CLAIM_TTL_S = 4 * 3600  # a run killed without cleaning up frees its database by then


@pytest.fixture(scope="session", autouse=True)
def django_db_modify_db_settings():
    """A PostgreSQL test database of this run's own (test_<name>_<run id>), so that two
    suites on one server never drop each other's database."""
    from django.conf import settings

    for db in settings.DATABASES.values():
        if db["ENGINE"] == "django.db.backends.postgresql":
            db.setdefault("TEST", {})["NAME"] = f"test_{db['NAME']}_{RUN_ID}"[:63]


def redis_up(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def _claim_redis_db(base_url: str) -> str | None:
    """The URL of a Redis database (15 down to 1) that no other test run holds, claimed with
    SET NX; None when no Redis answers or every database is taken."""
    import redis

    if not redis_up(base_url):
        return None
    base = base_url.rstrip("/")
    if base.count("/") > 2:  # a database number was given: use exactly that one
        return base
    for number in range(15, 0, -1):
        url = f"{base}/{number}"
        if redis.Redis.from_url(url).set(REDIS_CLAIM_KEY, RUN_ID, nx=True, ex=REDIS_CLAIM_TTL_S):
            return url
        if redis.Redis.from_url(url).get(REDIS_CLAIM_KEY) == RUN_ID.encode():
            return url
    return None


TEST_REDIS_URL = _claim_redis_db(REDIS_BASE_URL)


@pytest.fixture(autouse=True, scope="session")
def _celery_broker():
    """Tests never touch the developer's broker: a Redis database of their own when there is
    one, else an in-memory transport (unit tests only enqueue; nothing consumes)."""
    from config.celery import app

    app.conf.broker_url = TEST_REDIS_URL or "memory://"
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    yield
    if TEST_REDIS_URL:
        import redis

        redis.Redis.from_url(TEST_REDIS_URL).flushdb()  # the claim goes with it


@pytest.fixture(autouse=True)
def _own_work_dir(settings, tmp_path):
    """Tests never touch the developer's WORK_DIR: least of all its kept checkpoints, which
    the watchdog would prune as belonging to no entry of the test database."""
    settings.WORK_DIR = tmp_path / "work"


@pytest.fixture
def redis_url():
    import redis

    need(TEST_REDIS_URL is not None, f"no free Redis database at {REDIS_BASE_URL}")
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    client.set(REDIS_CLAIM_KEY, RUN_ID, ex=REDIS_CLAIM_TTL_S)  # flushdb took the claim
    return TEST_REDIS_URL


@pytest.fixture
def hub_online(monkeypatch):
    """`make test` sets HF_HUB_OFFLINE=1 so that nothing reaches the real Hub; the fake Hubs
    that tests start on 127.0.0.1 are reached through huggingface_hub's HfApi, which that
    flag would stop."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from evaluator.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def served(tmp_path_factory, tiny_model_dir):
    """A real HTTP server on 127.0.0.1 serving a folder (.root, at .url); the tiny model's
    archive is in it as tiny.tar.gz."""
    import tarfile
    from types import SimpleNamespace

    from tests.httpserver import App, running

    root = tmp_path_factory.mktemp("www")
    with tarfile.open(root / "tiny.tar.gz", "w:gz") as tar:
        tar.add(tiny_model_dir, arcname="tiny-llama")
    with running(App(root)) as app:
        yield SimpleNamespace(url=app.url(), root=root, app=app)


@pytest.fixture(scope="session")
def served_gguf(served, tiny_model_dir):
    """The tiny model as GGUF files beside it on the served folder: tiny-<type>.gguf, and an
    archive of the Q8_0 one with the model's own tokenizer files (tiny-gguf.tar.gz)."""
    import tarfile

    from evaluator.tinygguf import write_gguf

    for kind in ("F32", "F16", "Q8_0", "Q4_1"):
        write_gguf(tiny_model_dir, served.root / f"tiny-{kind}.gguf", kind)
    with tarfile.open(served.root / "tiny-gguf.tar.gz", "w:gz") as tar:
        tar.add(served.root / "tiny-Q8_0.gguf", arcname="tiny/tiny-Q8_0.gguf")
        for name in ("tokenizer.json", "tokenizer_config.json"):
            tar.add(tiny_model_dir / name, arcname=f"tiny/{name}")
    return served


@pytest.fixture(scope="module")
def one_torch_thread():
    """Speed only: a 64-wide model runs many times faster on one thread than on several
    (thread start-up dominates). A module opts in with usefixtures."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
