"""Verified model directories kept after use, keyed by their content hash.

A latency probe that runs after an evaluation on the same machine reads the checkpoint the
evaluation verified instead of downloading it again: the host may be gone, or allowed only
while the evaluation ran. The cache is bounded by a byte budget, least recently used out
first. A directory is only ever published complete (one rename), and handed out as hard
links, so pruning it while a probe reads its copy takes nothing from that probe.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .files import content_hash

log = logging.getLogger(__name__)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _entries(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def cached(root: Path) -> list[str]:
    """The content hashes in the cache."""
    return [p.name for p in _entries(Path(root))]


def keep(model_dir: Path, sha256: str, root: Path, budget_bytes: int) -> bool:
    """Move the verified model_dir into the cache as root/sha256 (model_dir is gone after a
    True); False when it is larger than the whole budget or already cached."""
    model_dir, root = Path(model_dir), Path(root)
    if budget_bytes <= 0 or _size(model_dir) > budget_bytes:
        return False
    root.mkdir(parents=True, exist_ok=True)
    target = root / sha256
    if target.exists():
        os.utime(target)  # used again: the last to go
        return False
    try:
        os.rename(model_dir, target)  # same filesystem (both under WORK_DIR): atomic
    except OSError:  # another process published the same content first, or another device
        return False
    prune(root, budget_bytes, spare=sha256)
    return True


def checkout(sha256: str, root: Path, dest: Path) -> Path | None:
    """A copy of the cached model sha256 at dest (hard links where the filesystem allows),
    its content hash checked again; None when absent or altered (an altered one is dropped)."""
    source, dest = Path(root) / sha256, Path(dest)
    if not source.is_dir():
        return None
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    try:
        for path in source.iterdir():
            try:
                os.link(path, dest / path.name)
            except OSError:  # no hard links here (another filesystem): a plain copy
                shutil.copy2(path, dest / path.name)
        os.utime(source)
    except FileNotFoundError:  # pruned while we linked: fetch it instead
        shutil.rmtree(dest, ignore_errors=True)
        return None
    if content_hash(dest) != sha256:
        log.warning("cached checkpoint %s changed on disk: dropped", sha256[:12])
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
        return None
    return dest


def prune(
    root: Path, budget_bytes: int, wanted: set[str] | None = None, spare: str = ""
) -> list[str]:
    """Remove cached models no longer wanted (when `wanted` is given), then the least
    recently used until the rest fits budget_bytes; spare is never removed. Returns the
    hashes removed."""
    entries = sorted(_entries(Path(root)), key=lambda p: p.stat().st_mtime, reverse=True)
    removed, total = [], 0
    for path in entries:
        size = _size(path)
        unwanted = wanted is not None and path.name not in wanted
        if path.name != spare and (unwanted or total + size > budget_bytes):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
        else:
            total += size
    return removed
