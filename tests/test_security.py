"""Production settings, the Content-Security-Policy, cookies and CSRF."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import make_entry, make_run

ROOT = Path(__file__).resolve().parent.parent
PROD_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-not-a-real-secret-but-long-and-random-enough-0123456789",
    "ALLOWED_HOSTS": "leaderboard.example.org",
}


def prod_env(**extra) -> dict:
    env = {**os.environ, **PROD_ENV, **extra}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # a test-only switch (tests/browser.py)
    return env


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=prod_env(**env),
    )


def test_production_settings_pass_the_deploy_check():
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=prod_env(),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_production_cookies_are_secure_and_http_only():
    out = run_python(
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
        "django.setup(); from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
        " s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0)"
    )
    assert out.stdout.split() == ["True"] * 5, out.stderr


def test_production_refuses_to_start_without_a_secret_key():
    out = run_python("import config.settings", SECRET_KEY="")
    assert out.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in out.stderr


def compose_default_secret_key() -> str:
    text = (ROOT / "docker-compose.yml").read_text()
    return re.search(r"SECRET_KEY: \$\{SECRET_KEY:-([^}]*)\}", text).group(1)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (compose_default_secret_key(), "the placeholder 'change-me-in-production' published"),
        ("dev-only-insecure-key", "published in this repository"),
        ("short-but-not-published", "too weak"),
        ("ab" * 40, "too weak"),  # long, but only two distinct characters
    ],
)
def test_the_deploy_check_fails_with_a_published_or_weak_secret_key(key, message):
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=prod_env(SECRET_KEY=key),
    )
    assert out.returncode != 0
    assert message in out.stderr and "secrets.token_urlsafe(50)" in out.stderr


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/paper/table-3/",
        "/latency/",
        "/submit/",
        "/queue/",
        "/models/mobilellm-125m/",
        "/paper/",
    ],
)
def test_every_page_has_a_csp_without_inline_scripts(client, reported, url):
    response = client.get(url)
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert "frame-ancestors 'none'" in policy
    html = response.content.decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert all("src=" in tag for tag in scripts), scripts  # no inline script
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers


def test_every_form_needs_its_csrf_token(db, reported):
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/submit/", {"url": "org/name", "name": "x"}).status_code == 403
    run = make_run(make_entry("Cancel me"))
    assert run.pk
    from leaderboard.models import Submission

    sub = Submission.objects.create(
        url="https://127.0.0.1/m.tar.gz",
        source_kind="archive",
        checkpoint_key="url:x",
        name="n",
        secret="s",
    )
    assert strict.post(f"/submissions/{sub.pk}/cancel/").status_code == 403
    assert Submission.objects.get(pk=sub.pk).status == "pending"


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("get", "/", 200),
        ("get", "/leaderboard.json", 200),
        ("get", "/leaderboard.csv", 200),
        ("get", "/no-such-page/", 404),
        ("get", "/static/leaderboard/charts.js", 200),  # served by WhiteNoise
        ("get", "/admin/login/", 200),
        ("post", "/api/submissions", 415),  # an error answer
    ],
)
def test_every_response_carries_a_permissions_policy(client, db, method, url, status):
    response = getattr(client, method)(url)
    assert response.status_code == status
    policy = response["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
        assert feature in policy
