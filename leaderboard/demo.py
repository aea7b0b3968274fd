"""The offline demo checkpoint: a tiny random-weight model, archived and served by the site
itself, so a new user can try the whole submit → evaluate → leaderboard path."""

import tarfile
import tempfile
from pathlib import Path

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


def demo_url(request) -> str:
    if not demo_path().exists():
        return ""
    return request.build_absolute_uri(f"/{settings.MEDIA_URL.strip('/')}/demo/{DEMO_NAME}")
