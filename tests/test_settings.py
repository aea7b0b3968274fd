"""config/settings.py: what the environment's values mean."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import BASE_DIR, database_from_url

ROOT = Path(__file__).resolve().parent.parent


def test_a_relative_sqlite_url_lands_in_the_project_not_at_the_filesystem_root():
    assert database_from_url("sqlite:///db.sqlite3")["NAME"] == BASE_DIR / "db.sqlite3"
    assert database_from_url("sqlite:///var/x.db")["NAME"] == BASE_DIR / "var" / "x.db"


def test_four_slashes_mean_an_absolute_path():
    assert database_from_url("sqlite:////srv/data/lb.sqlite3")["NAME"] == Path(
        "/srv/data/lb.sqlite3"
    )


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/db.sqlite3"])
def test_a_sqlite_url_without_a_path_is_refused_with_the_two_forms(url):
    with pytest.raises(ValueError, match="sqlite:///relative/path or sqlite:////absolute/path"):
        database_from_url(url)


def test_with_nothing_set_the_database_is_the_checkouts_own_whatever_the_directory(tmp_path):
    """Two checkouts on one machine must not share /db.sqlite3 (issue 8, item 9)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    code = "import config.settings as s; print(s.DATABASES['default']['NAME'])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # not the project: the path must not depend on where it is started
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(ROOT / "db.sqlite3")


def site_url_with(env_extra: dict, tmp_path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "SITE_URL"}
    env.update(PYTHONPATH=str(ROOT), VAR_DIR=str(tmp_path), **env_extra)
    code = "import config.settings as s; print(s.SITE_URL)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_printed_links_follow_the_port_make_run_serves_on(tmp_path):
    assert site_url_with({}, tmp_path) == "http://127.0.0.1:8000"
    (tmp_path / "site-url").write_text("http://127.0.0.1:8123\n")  # what `make run` writes
    assert site_url_with({}, tmp_path) == "http://127.0.0.1:8123"
    assert site_url_with({"SITE_URL": "https://lb.example.org/"}, tmp_path) == (
        "https://lb.example.org"
    )
