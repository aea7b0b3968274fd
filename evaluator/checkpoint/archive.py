"""An archive URL → an extracted model directory, with every member checked before it is
written: tarfile's own data filter (PEP 706) first, then our rules (no links at all, no
special files, no odd names), member-count, expanded-size and compression-ratio budgets
counted on the bytes actually decompressed (declared sizes can lie), and only the files a
model needs written: the rest is read through (it counts) and named in the log."""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path

from evaluator import safehttp
from evaluator.safehttp import CHUNK, CheckpointError, Limits, human_bytes

from .files import GGUF, PICKLE_SUFFIXES, PICKLES_REFUSED, is_kept
from .source import Source

log = logging.getLogger(__name__)
# Below this, a member or an archive may compress as well as it likes: a config.json of
# spaces is not a bomb, and the ratio of a few bytes says nothing.
_RATIO_FREE_BYTES = 1024**2
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error)
_CORRUPT += (NotImplementedError,)  # zipfile, for compression methods it lacks
_CORRUPT += (ValueError,)  # tarfile and zipfile, for some malformed headers and names
# PEP 706's refusals, in the words our own checks use for the same tricks.
_FILTER_REASONS = {
    tarfile.AbsolutePathError: "absolute or Windows-style path",
    tarfile.OutsideDestinationError: "'..' in its path",
    tarfile.SpecialFileError: "not a regular file",
    tarfile.AbsoluteLinkError: "a link",
    tarfile.LinkOutsideDestinationError: "a link",
}


def fetch_archive(source: Source, work: Path, allowed, limits: Limits, ticker) -> tuple:
    """Download and extract; returns (model_dir, {name: sha256}) of the files kept."""
    archive = work / "download"
    with open(archive, "xb") as out:
        safehttp.download(
            source.url,
            out,
            allowed=allowed,
            limits=limits,
            max_bytes=limits.max_download_bytes,
            tick=ticker,
        )
    root = work / "extracted"
    root.mkdir()
    budget = _Budget(limits, ticker)
    with open(archive, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        if not gzipped and zipfile.is_zipfile(archive):
            _extract_zip(archive, root, budget)
        else:
            with open(archive, "rb") as raw:
                budget.consumed = raw.tell  # compressed bytes read so far, for the ratio
                # gzip.GzipFile, not tarfile's "r|gz": only GzipFile checks the final CRC.
                stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
                with stream:
                    _extract_tar(stream, root, budget)
    except _CORRUPT as exc:
        raise CheckpointError(
            f"the archive is corrupt, truncated or not a .tar, .tar.gz or .zip ({exc})"
        ) from None
    archive.unlink()
    if budget.ignored:
        shown = ", ".join(repr(name[:80]) for name in budget.ignored[:10])
        more = f" and {len(budget.ignored) - 10} more" if len(budget.ignored) > 10 else ""
        log.info("ignored archive members a model does not need: %s%s", shown, more)
    model_dir = _model_root(root)
    _prune(model_dir)
    pickles = [n for n in budget.ignored if n.endswith(PICKLE_SUFFIXES)]
    weights = [p for p in model_dir.iterdir() if p.suffix in (".safetensors", ".gguf")]
    if pickles and not weights:
        raise CheckpointError(PICKLES_REFUSED)
    return model_dir, {p.name: budget.hashes[p] for p in model_dir.iterdir()}


def member_path(root: Path, name: str) -> Path | None:
    """Where a member goes under root, or None for the root itself; refuses tricks."""
    shown = repr(name[:120])
    if "\\" in name or name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise CheckpointError(f"refused archive member {shown}: absolute or Windows-style path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise CheckpointError(f"refused archive member {shown}: '..' in its path")
    if any(ord(ch) < 32 for ch in name) or len(name) > 1024 or any(len(p) > 200 for p in parts):
        raise CheckpointError(f"refused archive member {shown}: odd characters or too long")
    return root.joinpath(*parts) if parts else None


def wanted(name: str) -> bool:
    """A file a model directory needs (or a .gguf), at the archive's root or in one top-level
    folder."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return 1 <= len(parts) <= 2 and is_kept(parts[-1])


class _Budget:
    """Counts members and the bytes decompressed, checks the compression ratio per member
    and in total, and hashes each file as it goes."""

    def __init__(self, limits: Limits, ticker) -> None:
        self.limits, self.ticker, self.members = limits, ticker, 0
        self.left = limits.max_expanded_bytes
        self.hashes: dict[Path, str] = {}
        self.ignored: list[str] = []
        self.consumed = lambda: 0  # compressed bytes read so far (set by the extractor)
        self.expanded = 0
        self.name, self.member_start, self.member_expanded = "", 0, 0

    def start(self, name: str, compressed_start: int | None = None) -> None:
        """A new member begins; its ratio counts from here."""
        self.name, self.member_expanded = name, 0
        self.member_start = self.consumed() if compressed_start is None else compressed_start

    def _check_ratio(self) -> None:
        ratio, consumed = self.limits.max_ratio, self.consumed()
        member = (self.member_expanded, consumed - self.member_start, f"member {self.name!r}")
        for expanded, compressed, what in [(self.expanded, consumed, "archive"), member]:
            if expanded > _RATIO_FREE_BYTES and expanded > ratio * max(compressed, 1):
                raise CheckpointError(
                    f"refused: the {what[:140]} expands more than {ratio:g} times its "
                    "compressed size (a decompression bomb?): publish it less compressed"
                )

    def member(self, count: int = 1) -> None:
        self.ticker.check()
        self.members += count
        if self.members > self.limits.max_archive_members:
            limit = self.limits.max_archive_members
            raise CheckpointError(f"the archive has more than {limit} members")

    def take(self, nbytes: int, decompressed: bool = True) -> None:
        self.left -= nbytes
        if self.left < 0:
            limit = human_bytes(self.limits.max_expanded_bytes)
            raise CheckpointError(f"the archive expands past the {limit} limit")
        if decompressed:
            self.expanded += nbytes
            self.member_expanded += nbytes
            self._check_ratio()

    def skip(self, src, name: str) -> None:
        """Read a member the model does not need through, counting it, writing nothing."""
        self.ignored.append(name)
        while chunk := src.read(CHUNK):
            self.take(len(chunk))

    def copy(self, src, target: Path, name: str) -> None:
        make_dir(target.parent, name)
        try:
            out = open(target, "xb")  # never overwrite: a duplicate member is refused
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise CheckpointError(f"refused archive member {target.name!r}: duplicate") from None
        digest = hashlib.sha256()
        with out:
            while chunk := src.read(CHUNK):
                self.take(len(chunk))
                digest.update(chunk)
                out.write(chunk)
        self.hashes[target] = digest.hexdigest()


def make_dir(path: Path, name: str) -> None:
    """mkdir -p, refusing a member whose folder is a file the archive wrote before (or the
    other way round): mkdir's own error would end the run as a crash, not a refusal."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CheckpointError(
            f"refused archive member {name[:120]!r}: a file and a folder share its path"
        ) from None


def _refuse_member(name: str, isdir: bool, regular: bool, link: bool) -> None:
    if not isdir and not regular:
        kind = "a link" if link else "not a regular file"
        raise CheckpointError(f"refused archive member {name[:120]!r}: {kind}")


def _filtered(member: tarfile.TarInfo, root: Path) -> tarfile.TarInfo:
    """tarfile's data filter; where it would quietly mend a name (strip a leading "/"), the
    member is refused instead: an archive that tries that is not a model we want."""
    try:
        filtered = tarfile.data_filter(member, str(root))
    except tarfile.FilterError as exc:
        reason = _FILTER_REASONS.get(type(exc), "refused by the archive filter")
        raise CheckpointError(f"refused archive member {member.name[:120]!r}: {reason}") from None
    if filtered.name != member.name:
        raise CheckpointError(
            f"refused archive member {member.name[:120]!r}: absolute or Windows-style path"
        )
    return filtered


def _extract_tar(stream, root: Path, budget: _Budget) -> None:
    # Stream mode ("r|") checks each member as it comes, without a listing pass first.
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            budget.member()
            member = _filtered(member, root)
            target = member_path(root, member.name)
            regular = member.isfile() and not member.issparse()
            _refuse_member(member.name, member.isdir(), regular, member.issym() or member.islnk())
            if member.isdir() or target is None:
                if target is not None and target.parent == root:  # a top-level folder
                    make_dir(target, member.name)
                continue
            if member.size > budget.left:
                budget.take(member.size, decompressed=False)
            budget.start(member.name)
            if wanted(member.name):
                budget.copy(tar.extractfile(member), target, member.name)
            else:
                budget.skip(tar.extractfile(member), member.name)
    budget.start("(after the last member)")
    while chunk := stream.read(CHUNK):  # to the end, so gzip verifies its checksum
        budget.take(len(chunk))


def _extract_zip(archive: Path, root: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        budget.member(len(infos))
        if sum(info.file_size for info in infos) > budget.left:
            budget.take(sum(info.file_size for info in infos), decompressed=False)
        read = 0  # compressed bytes of the members so far: what zipfile reads for them
        budget.consumed = lambda: read
        for info in infos:
            budget.ticker.check()
            target = member_path(root, info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: the zip does not say
            regular = kind in (0, stat.S_IFREG)
            _refuse_member(info.filename, info.is_dir(), regular, kind == stat.S_IFLNK)
            if info.is_dir() or target is None:
                if target is not None and target.parent == root:  # a top-level folder
                    make_dir(target, info.filename)
                continue
            if info.flag_bits & 0x1:
                raise CheckpointError("the archive is encrypted: publish it without a password")
            budget.start(info.filename, read)
            read += info.compress_size
            with zf.open(info) as src:
                if wanted(info.filename):
                    budget.copy(src, target, info.filename)
                else:
                    budget.skip(src, info.filename)


def _model_root(root: Path) -> Path:
    if _is_model(root):
        return root
    entries = [p for p in root.iterdir() if p.name not in ("__MACOSX", ".DS_Store")]
    if len(entries) == 1 and entries[0].is_dir() and _is_model(entries[0]):
        return entries[0]
    raise CheckpointError(
        "config.json not found, nor a .gguf file: put the model files at the archive's root "
        "or in its single top-level folder"
    )


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or any(
        p.is_file() and GGUF.fullmatch(p.name) for p in folder.iterdir()
    )


def _prune(model_dir: Path) -> None:
    """Drop what extraction kept beside the model: the other top-level folders' files (a
    model at the root beside a folder), never opened."""
    for entry in model_dir.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        elif not is_kept(entry.name):
            entry.unlink()
