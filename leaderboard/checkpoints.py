"""The site's cache of verified checkpoints (evaluator/checkpoint/cache.py) under WORK_DIR:
an evaluation leaves its model there, a probe on the same machine reads it from there, and
the housekeeping task keeps it within CHECKPOINT_CACHE_BYTES."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings

from evaluator.checkpoint import cache

from .models import Entry

log = logging.getLogger(__name__)


def root() -> Path:
    return Path(settings.WORK_DIR) / "checkpoints"


def keep(model_dir: Path, sha256: str) -> bool:
    """Keep an evaluated model for the probes to come; never a reason to fail a run."""
    try:
        return cache.keep(model_dir, sha256, root(), settings.CHECKPOINT_CACHE_BYTES)
    except OSError as exc:
        log.warning("checkpoint %s not kept for probes: %s", sha256[:12], exc)
        return False


def checkout(sha256: str, dest: Path) -> Path | None:
    """The cached model sha256 at dest, or None (then the caller downloads it)."""
    try:
        return cache.checkout(sha256, root(), dest)
    except OSError as exc:
        log.warning("cached checkpoint %s unreadable: %s", sha256[:12], exc)
        return None


def prune() -> int:
    """Housekeeping: drop the models no entry holds any more (deleted), then the least
    recently used beyond the budget. Returns how many went."""
    held = Entry.objects.filter(content_sha256__in=cache.cached(root()))
    wanted = set(held.values_list("content_sha256", flat=True))
    return len(cache.prune(root(), settings.CHECKPOINT_CACHE_BYTES, wanted=wanted))
