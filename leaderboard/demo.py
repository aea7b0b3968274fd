"""The offline demo checkpoint: a tiny random-weight model, archived and served by the site
itself, so a new user can try the whole submit → evaluate → leaderboard path."""

import ipaddress
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

DEMO_NAME = "demo-tiny-llama.tar.gz"


def demo_path() -> Path:
    return Path(settings.MEDIA_ROOT) / "demo" / DEMO_NAME


def build_demo(force: bool = False) -> Path:
    from evaluator.tinymodel import build_tiny_model

    path = demo_path()
    if path.exists() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "demo-tiny-llama")
        partial = path.with_suffix(".partial")
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(model, arcname="demo-tiny-llama")
        partial.replace(path)
    return path


def demo_path_in_urls() -> str:
    return f"/{settings.MEDIA_URL.strip('/')}/demo/{DEMO_NAME}"


def allow_entry_for(url: str) -> str | None:
    """ "host:port" when url is this site's demo checkpoint on a loopback address (what
    `make run` prints), else None: `manage.py evaluate` trusts exactly that, so the demo
    works from a terminal with no allow-list set, and nothing else on the machine opens."""
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError:
        return None
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback or parts.path != demo_path_in_urls():
        return None
    if not demo_path().exists():
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def demo_url(request) -> str:
    if not demo_path().exists():
        return ""
    return request.build_absolute_uri(demo_path_in_urls())
