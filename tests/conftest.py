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
