"""Untrusted checkpoint URL → verified local model directory (DESIGN §6), in stages:

- source: what was typed → a Source (no network);
- hub: a Hub revision pinned to its commit, its files listed (HfApi) and downloaded;
- archive: an archive downloaded and extracted under budgets and member checks;
- gguf_header, gguf_convert: a .gguf file (downloaded, or found alone in an archive beside
  its tokenizer files) header-checked within caps, dequantised and written as a plain model
  directory (float32 safetensors, config.json, tokenizer), which then goes through the same
  checks as any other;
- inspection: config.json and the safetensors headers checked, nothing allocated;
- skeleton: the weights matched to the model config.json describes, built on meta;
- values: every weight finite (read a slice at a time, after the size checks);
- files: what a model directory keeps, and its content hash.

fetch() runs them in a temp dir beside `dest` and moves the model into place only once every
check passed. Network rules: evaluator/safehttp.py.

What the rest of the site reads from a Fetched: `path` (the model directory to evaluate),
`sha256` (the content hash of what was submitted: for a GGUF, of the .gguf file and any
tokenizer files beside it, not of the converted directory), `info` (ModelInfo of the model
that runs), and the format it came in: `source_format` is "safetensors" or "gguf"; for a
GGUF, `gguf_type` is the ggml type most weight-matrix elements are stored in ("Q4_1",
"Q8_0", "F16": the precision of the variant the run measures; the model itself runs the
dequantised float32 weights) and `gguf_bytes` the .gguf file's size. `gguf` holds the rest
(GGUFInfo: the element count per ggml type, the file's architecture name).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from evaluator.safehttp import Allowed, CheckpointError, Limits

from . import archive, gguf_convert, hub, values
from .files import GGUF, NEEDED_FILES, PICKLES_REFUSED, content_hash, hash_of, is_needed
from .gguf_convert import GGUFInfo
from .inspection import ModelInfo, inspect, read_safetensors_header, weight_files
from .source import HUB_ENDPOINT, Source, parse_source

__all__ = ["CheckpointError", "Fetched", "Limits", "ModelInfo", "Source", "content_hash"]
__all__ += ["fetch", "inspect", "is_needed", "parse_source", "read_safetensors_header"]
__all__ += ["resolve", "NEEDED_FILES", "PICKLES_REFUSED", "GGUFInfo"]

DEFAULT_LIMITS = Limits()


@dataclass
class Fetched:
    path: Path
    sha256: str  # the content hash: the same checkpoint submitted twice hashes the same
    size_bytes: int
    files: list[str]
    info: ModelInfo  # inspect(path), run by fetch()
    gguf: GGUFInfo | None = None  # set when the checkpoint came as a .gguf

    @property
    def source_format(self) -> str:
        return "gguf" if self.gguf else "safetensors"

    @property
    def gguf_type(self) -> str:
        return self.gguf.gguf_type if self.gguf else ""

    @property
    def gguf_bytes(self) -> int:
        return self.gguf.file_bytes if self.gguf else 0


def resolve(
    source: Source,
    *,
    hub_endpoint: str = HUB_ENDPOINT,
    allowed_hosts: Iterable[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    token: str | None = None,
) -> Source:
    """Pin a Hub source to the commit its revision points at now; archives pass through."""
    if source.kind != "hub":
        return source
    return hub.resolve(source, hub_endpoint.rstrip("/"), Allowed(allowed_hosts), limits, token)


class _Progress:
    """Calls progress(done, total) after each chunk and raises once should_stop() says so."""

    def __init__(self, progress, should_stop, total: int | None = None) -> None:
        self.progress, self.should_stop, self.total, self.done = progress, should_stop, total, 0

    def check(self) -> None:
        if self.should_stop and self.should_stop():
            raise CheckpointError("cancelled")

    def __call__(self, nbytes: int, length: int | None) -> None:
        self.check()
        self.done += nbytes
        if self.progress:
            self.progress(self.done, self.total if self.total is not None else length)


def fetch(
    source: Source,
    dest: Path,
    *,
    hub_endpoint: str = HUB_ENDPOINT,
    allowed_hosts: Iterable[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    token: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Fetched:
    """Download, extract and inspect `source`; the verified model ends up at `dest`.

    `dest` must not exist or be an empty directory. All work happens in a temp dir beside
    it, removed on any failure, so `dest` is only ever the complete, inspected model.
    progress is called after every chunk (1 MiB): throttle on your side if needed.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} exists and is not an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    allowed, ticker = Allowed(allowed_hosts), _Progress(progress, should_stop)
    try:
        ticker.check()
        if source.kind == "hub":
            endpoint = hub_endpoint.rstrip("/")
            model_dir, hashes = hub.fetch_files(
                source, work, endpoint, allowed, limits, token, ticker
            )
        elif source.kind == "archive":
            model_dir, hashes = archive.fetch_archive(source, work, allowed, limits, ticker)
        elif source.kind == "gguf":
            model_dir, hashes = _download_gguf(source, work, allowed, limits, ticker)
        else:
            raise ValueError(f"unknown source kind {source.kind!r}")
        gguf_info = None
        if ggufs := sorted(p for p in model_dir.iterdir() if GGUF.fullmatch(p.name)):
            ticker.check()
            converted = work / "converted"
            model_dir, gguf_info = _convert_gguf(model_dir, ggufs, converted, limits, ticker)
        ticker.check()
        info = inspect(model_dir, limits)
        ticker.check()
        values.check_finite(weight_files(model_dir))
        files = sorted(p.name for p in model_dir.iterdir())
        size = sum((model_dir / name).stat().st_size for name in files)
        ticker.check()
        os.replace(model_dir, dest)  # rename(2) replaces an empty directory atomically
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Fetched(dest, hash_of(hashes), size, files, info, gguf_info)


def _download_gguf(source: Source, work: Path, allowed, limits: Limits, ticker) -> tuple:
    """A .gguf URL → (a folder holding model.gguf, {name: sha256}); the name is fixed so the
    same file under two URLs hashes the same."""
    from evaluator import safehttp

    folder = work / "download"
    folder.mkdir()
    with open(folder / "model.gguf", "xb") as out:
        got = safehttp.download(
            source.url,
            out,
            allowed=allowed,
            limits=limits,
            max_bytes=limits.max_download_bytes,
            tick=ticker,
        )
    return folder, {"model.gguf": got.sha256}


def _convert_gguf(folder: Path, ggufs: list[Path], out: Path, limits: Limits, ticker) -> tuple:
    if len(ggufs) > 1:
        names = ", ".join(p.name for p in ggufs[:5])
        raise CheckpointError(f"the archive holds {len(ggufs)} .gguf files ({names}): keep one")
    if any(folder.glob("*.safetensors")):
        raise CheckpointError(
            "the archive holds both safetensors weights and a .gguf file: publish one of them"
        )
    info = gguf_convert.convert(ggufs[0], out, limits, tokenizer_dir=folder, tick=ticker.check)
    return out, info
