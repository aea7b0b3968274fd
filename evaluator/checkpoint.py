"""Untrusted checkpoint URL → verified local model directory (DESIGN §6).

parse_source() checks what was typed, resolve() pins a Hub revision to its commit, and
fetch() downloads, extracts and inspects in a temp dir beside `dest`, moving the model
into place only once every check passed. inspect() reads config.json and the safetensors
headers, never tensor data; pickle weights are never loaded. Network rules: safehttp.py.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from evaluator.safehttp import CHUNK, Allowed, CheckpointError, HTTPStatusError, Limits, human_bytes
from evaluator.safehttp import download as _download
from evaluator.safehttp import get_json as _get_json

__all__ = ["CheckpointError", "Fetched", "Limits", "ModelInfo", "Source", "content_hash"]
__all__ += ["fetch", "inspect", "parse_source", "resolve"]

HUB_ENDPOINT = "https://huggingface.co"
DEFAULT_LIMITS = Limits()
HUB_HOSTS = {"huggingface.co", "www.huggingface.co", "hf.co"}
# What a causal LM needs to load and tokenize; fetch() keeps these and drops the rest.
NEEDED_FILES = frozenset(
    "config.json generation_config.json model.safetensors.index.json tokenizer.json "
    "tokenizer_config.json special_tokens_map.json tokenizer.model vocab.json merges.txt "
    "added_tokens.json".split()
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
PICKLES_REFUSED = "pickle weights are refused; publish safetensors"
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"{_REPO_PART}/{_REPO_PART}")
_REVISION = re.compile(r"[A-Za-z0-9._-][A-Za-z0-9._/-]{0,199}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SAFETENSORS = re.compile(r"[A-Za-z0-9._-]+\.safetensors")
# Characters RFC 3986 leaves out of URLs; in a submitted URL they are markup, not a path.
_NOT_IN_URLS = '<>"{}|\\^`'
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error)
_CORRUPT += (NotImplementedError,)  # zipfile, for compression methods it lacks


@dataclass(frozen=True)
class Source:
    kind: str  # "hub" or "archive"
    url: str
    repo_id: str = ""
    revision: str = ""
    commit: str = ""  # the 40-hex commit a Hub revision resolved to


@dataclass
class Fetched:
    path: Path
    sha256: str  # content_hash(path): the same checkpoint submitted twice hashes the same
    size_bytes: int
    files: list[str]
    info: ModelInfo | None = None  # inspect(path), already run by fetch()


def parse_source(text: str) -> Source:
    """Check the submitted text (no network): a Hub repo id or page, or an archive URL."""
    text = text.strip()
    if not text:
        raise CheckpointError("enter a Hugging Face repo id (org/name) or an archive URL")
    if len(text) > 2000:
        raise CheckpointError("the URL is longer than 2000 characters")
    if not text.isascii() or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise CheckpointError("the URL must be plain ASCII without spaces or control characters")
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text):
        repo_id, _, revision = text.partition("@")
        return _hub_source(repo_id, revision)
    try:
        parts = urlsplit(text)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise CheckpointError("the URL has an invalid host or port") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise CheckpointError("only http(s) URLs or Hugging Face repo ids (org/name) are accepted")
    unsafe = sorted(set(text) & set(_NOT_IN_URLS))
    if unsafe:
        raise CheckpointError(
            f"the URL contains {' '.join(unsafe)}, which URLs may not carry: percent-encode "
            "them (or check that you pasted the right thing)"
        )
    if "@" in parts.netloc:
        raise CheckpointError("remove the user name and password from the URL")
    if not host:
        raise CheckpointError("the URL has no host")
    if host in HUB_HOSTS and not parts.path.lower().endswith(ARCHIVE_SUFFIXES):
        return _hub_page(parts.path)
    if not parts.path.lower().endswith(ARCHIVE_SUFFIXES):
        raise CheckpointError(
            "a URL must point to a .tar.gz, .tgz, .tar or .zip archive of the model directory, "
            "or to a Hugging Face model page"
        )
    return Source("archive", urlunsplit(parts._replace(fragment="")))


def _hub_source(repo_id: str, revision: str) -> Source:
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or "--" in repo_id:
        raise CheckpointError(
            f"{repo_id[:100]!r} is not a Hugging Face repo id: write org/name, "
            "or give the full URL of an archive (.tar.gz, .tgz, .tar, .zip)"
        )
    revision = revision or "main"
    if not _REVISION.fullmatch(revision) or ".." in revision or revision.endswith("/"):
        raise CheckpointError(f"{revision[:100]!r} is not a valid branch, tag or commit")
    return Source("hub", f"{HUB_ENDPOINT}/{repo_id}", repo_id=repo_id, revision=revision)


def _hub_page(path: str) -> Source:
    segments = [s for s in path.split("/") if s]
    if segments[:1] in (["datasets"], ["spaces"]):
        raise CheckpointError("that is a dataset or Space: link a model repository")
    if len(segments) == 2 or (len(segments) > 3 and segments[2] == "tree"):
        return _hub_source("/".join(segments[:2]), unquote("/".join(segments[3:])))
    raise CheckpointError(
        "link the model's repository page (https://huggingface.co/org/name) "
        "or a revision of it (https://huggingface.co/org/name/tree/<revision>)"
    )


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
    commit, _ = _hub_listing(source, hub_endpoint, Allowed(allowed_hosts), limits, token)
    return replace(source, url=f"{hub_endpoint.rstrip('/')}/{source.repo_id}", commit=commit)


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _hub_listing(source, endpoint, allowed, limits, token) -> tuple[str, list[tuple[str, int]]]:
    revision = source.commit or source.revision or "main"
    url = (
        f"{endpoint.rstrip('/')}/api/models/{source.repo_id}/revision/"
        f"{quote(revision, safe='')}?blobs=true"  # blobs: file sizes, to check the cap early
    )
    try:
        data = _get_json(url, allowed=allowed, limits=limits, headers=_auth(token))
    except HTTPStatusError as exc:
        if exc.transient:
            raise
        raise CheckpointError(
            f"{source.repo_id}@{revision} was not found on the Hub, or it is private or gated: "
            "check the name and revision, or make the repository public"
        ) from None
    sha = data.get("sha") if isinstance(data, dict) else None
    if not isinstance(sha, str) or not _COMMIT.fullmatch(sha):
        raise CheckpointError(f"the Hub gave no commit for {source.repo_id}@{revision}")
    if source.commit and sha != source.commit:  # the pinned commit is what runs, or nothing
        raise CheckpointError(f"the Hub answered commit {sha} for {source.commit}")
    files = []
    for sibling in data.get("siblings") or []:
        name = sibling.get("rfilename") if isinstance(sibling, dict) else None
        if isinstance(name, str):
            size = sibling.get("size")
            files.append((name, size if isinstance(size, int) and size >= 0 else -1))
    return sha, files


def is_needed(name: str) -> bool:
    """The files a model directory keeps (and content_hash covers)."""
    return name in NEEDED_FILES or bool(_SAFETENSORS.fullmatch(name))


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
            model_dir = _fetch_hub(source, work, endpoint, allowed, limits, token, ticker)
        elif source.kind == "archive":
            model_dir = _fetch_archive(source, work, allowed, limits, ticker)
        else:
            raise ValueError(f"unknown source kind {source.kind!r}")
        info = inspect(model_dir)
        files = sorted(p.name for p in model_dir.iterdir())
        size = sum((model_dir / name).stat().st_size for name in files)
        digest = content_hash(model_dir)
        ticker.check()
        os.replace(model_dir, dest)  # rename(2) replaces an empty directory atomically
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Fetched(dest, digest, size, files, info)


def _fetch_hub(source, work, endpoint, allowed, limits, token, ticker) -> Path:
    commit, listing = _hub_listing(source, endpoint, allowed, limits, token)
    # Subfolders (onnx/, original/ ...) hold other formats: only the root is the model.
    wanted = [(name, size) for name, size in listing if "/" not in name and is_needed(name)]
    pickles = [name for name, _ in listing if name.endswith(PICKLE_SUFFIXES)]
    if not any(name.endswith(".safetensors") for name, _ in wanted):
        raise CheckpointError(PICKLES_REFUSED if pickles else "the repository has no weights")
    if all(size >= 0 for _, size in wanted):
        ticker.total = sum(size for _, size in wanted)
        if ticker.total > limits.max_download_bytes:
            raise CheckpointError(
                f"the model files add up to {human_bytes(ticker.total)}, over the "
                f"{human_bytes(limits.max_download_bytes)} limit"
            )
    model_dir = work / "model"
    model_dir.mkdir()
    for name, _ in wanted:
        url = f"{endpoint}/{source.repo_id}/resolve/{commit}/{quote(name)}"
        with open(model_dir / name, "xb") as out:
            got = _download(
                url,
                out,
                allowed=allowed,
                limits=limits,
                max_bytes=limits.max_download_bytes - ticker.done,
                headers=_auth(token),
                tick=ticker,
            )
        if got.linked_sha256 and got.linked_sha256 != got.sha256:
            raise CheckpointError(f"{name} arrived corrupted (sha256 mismatch)", transient=True)
    return model_dir


def _fetch_archive(source, work, allowed, limits, ticker) -> Path:
    archive = work / "download"
    with open(archive, "xb") as out:
        _download(
            source.url,
            out,
            allowed=allowed,
            limits=limits,
            max_bytes=limits.max_download_bytes,
            tick=ticker,
        )
    root = work / "extracted"
    root.mkdir()
    with open(archive, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        if not gzipped and zipfile.is_zipfile(archive):
            _extract_zip(archive, root, limits, ticker)
        else:
            # gzip.open, not tarfile's own "r|gz": only GzipFile checks the CRC at the end.
            with (gzip.open if gzipped else open)(archive, "rb") as stream:
                _extract_tar(stream, root, limits, ticker)
    except _CORRUPT as exc:
        raise CheckpointError(
            f"the archive is corrupt, truncated or not a .tar, .tar.gz or .zip ({exc})"
        ) from None
    archive.unlink()
    model_dir = _model_root(root)
    if _prune(model_dir) and not any(model_dir.glob("*.safetensors")):
        raise CheckpointError(PICKLES_REFUSED)
    return model_dir


def _member_path(root: Path, name: str) -> Path | None:
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


class _Budget:
    """Counts the bytes actually written: declared sizes can lie (zip bombs)."""

    def __init__(self, limits: Limits, ticker: _Progress) -> None:
        self.limits, self.ticker, self.members = limits, ticker, 0
        self.left = limits.max_expanded_bytes

    def member(self, count: int = 1) -> None:
        self.ticker.check()
        self.members += count
        if self.members > self.limits.max_archive_members:
            limit = self.limits.max_archive_members
            raise CheckpointError(f"the archive has more than {limit} members")

    def take(self, nbytes: int) -> None:
        self.left -= nbytes
        if self.left < 0:
            limit = human_bytes(self.limits.max_expanded_bytes)
            raise CheckpointError(f"the archive expands past the {limit} limit")

    def copy(self, src, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            out = open(target, "xb")  # never overwrite: a duplicate member is refused
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise CheckpointError(f"refused archive member {target.name!r}: duplicate") from None
        with out:
            while chunk := src.read(CHUNK):
                self.take(len(chunk))
                out.write(chunk)


def _refuse_member(name: str, isdir: bool, regular: bool, link: bool) -> None:
    if not isdir and not regular:
        kind = "a link" if link else "not a regular file"
        raise CheckpointError(f"refused archive member {name[:120]!r}: {kind}")


def _extract_tar(stream, root: Path, limits: Limits, ticker: _Progress) -> None:
    budget = _Budget(limits, ticker)
    # Stream mode ("r|") checks each member as it comes, without a listing pass first.
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            budget.member()
            target = _member_path(root, member.name)
            regular = member.isfile() and not member.issparse()
            _refuse_member(member.name, member.isdir(), regular, member.issym() or member.islnk())
            if member.isdir() or target is None:
                if target is not None:
                    target.mkdir(parents=True, exist_ok=True)
                continue
            if member.size > budget.left:
                budget.take(member.size)
            budget.copy(tar.extractfile(member), target)
    while chunk := stream.read(CHUNK):  # to the end, so gzip verifies its checksum
        budget.take(len(chunk))


def _extract_zip(archive: Path, root: Path, limits: Limits, ticker: _Progress) -> None:
    budget = _Budget(limits, ticker)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        budget.member(len(infos))
        if sum(info.file_size for info in infos) > budget.left:
            budget.take(sum(info.file_size for info in infos))
        for info in infos:
            ticker.check()
            target = _member_path(root, info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: the zip does not say
            regular = kind in (0, stat.S_IFREG)
            _refuse_member(info.filename, info.is_dir(), regular, kind == stat.S_IFLNK)
            if info.is_dir() or target is None:
                if target is not None:
                    target.mkdir(parents=True, exist_ok=True)
                continue
            if info.flag_bits & 0x1:
                raise CheckpointError("the archive is encrypted: publish it without a password")
            with zf.open(info) as src:
                budget.copy(src, target)


def _model_root(root: Path) -> Path:
    if (root / "config.json").is_file():
        return root
    entries = [p for p in root.iterdir() if p.name not in ("__MACOSX", ".DS_Store")]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "config.json").is_file():
        return entries[0]
    raise CheckpointError(
        "config.json not found: put the model files at the archive's root "
        "or in its single top-level folder"
    )


def _prune(model_dir: Path) -> list[str]:
    """Drop everything the model does not need; pickles are deleted, never opened."""
    pickles = []
    for entry in model_dir.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        elif not is_needed(entry.name):
            if entry.name.endswith(PICKLE_SUFFIXES):
                pickles.append(entry.name)
            entry.unlink()
    return pickles


def content_hash(model_dir: Path) -> str:
    """sha256 over the sorted (name, file sha256) pairs of the files a model keeps.

    Only kept files count (see is_needed), so the same checkpoint hashes the same whether
    it came from the Hub or an archive, with or without a README beside it.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).iterdir()):
        if path.is_file() and is_needed(path.name):
            file_digest = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    file_digest.update(chunk)
            digest.update(f"{path.name}\0{file_digest.hexdigest()}\n".encode())
    return digest.hexdigest()


# --- inspect(): what the model is, from config.json and the safetensors headers ---

# safetensors dtype → (bytes per element, torch name)
_DTYPES = {
    "BOOL": (1, "bool"), "U8": (1, "uint8"), "I8": (1, "int8"), "F8_E4M3": (1, "float8_e4m3fn"),
    "F8_E5M2": (1, "float8_e5m2"), "I16": (2, "int16"), "U16": (2, "uint16"),
    "F16": (2, "float16"), "BF16": (2, "bfloat16"), "I32": (4, "int32"), "U32": (4, "uint32"),
    "F32": (4, "float32"), "I64": (8, "int64"), "U64": (8, "uint64"), "F64": (8, "float64"),
}  # fmt: skip
_MAX_HEADER = 100 * 1024**2  # the safetensors library's own limit
_TOKEN_EMBEDDINGS = ("embed_tokens", "wte", "word_embeddings", "embed_in", "tok_embeddings")
_POSITION_EMBEDDINGS = ("wpe", "embed_positions", "position_embeddings")
_HEADS = ("lm_head", "embed_out")
Tensors = dict[str, tuple[str, tuple[int, ...]]]


@dataclass(frozen=True)
class ModelInfo:
    model_type: str
    architecture: str  # the transformers class that will run it, e.g. "LlamaForCausalLM"
    params_total: int
    params_non_embedding: int
    layers: int
    hidden_size: int
    vocab_size: int
    tied_embeddings: bool
    dtype: str  # the storage dtype of most parameters, torch's name ("bfloat16")
    layer_sharing: dict | None  # config.json "layer_sharing", passed through


def inspect(model_dir: Path) -> ModelInfo:
    """Check that model_dir is a loadable, safe causal LM and describe it; no tensor data read.

    params_total counts every parameter once (a stored copy of a tied head is the embedding
    again). params_non_embedding leaves out the token embeddings, learned position
    embeddings and an untied output head, as MobileLLM and the scaling-law papers count.
    """
    model_dir = Path(model_dir)
    raw = _read_json(model_dir / "config.json")
    for name, doc in [
        ("config.json", raw),
        ("tokenizer_config.json", _tokenizer_config(model_dir)),
    ]:
        if _has_key(doc, ("auto_map", "custom_pipelines")):
            raise CheckpointError(
                f"{name} asks for custom code (auto_map), which is never run here: "
                "use an architecture that transformers ships"
            )
        if _has_key(doc, ("trust_remote_code",)):
            raise CheckpointError(
                f"{name} asks for remote code (trust_remote_code), which is never run here: "
                "remove the key and use an architecture that transformers ships"
            )
    model_type, architecture = _causal_lm_type(raw)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
    except Exception as exc:  # any bad value: the message is the useful part
        raise CheckpointError(f"config.json is not a valid {model_type} config: {exc}") from None
    text = config.get_text_config()
    layers = [getattr(text, k, None) for k in ("num_hidden_layers", "n_layer", "num_layers")]
    vocab = getattr(text, "vocab_size", 0)
    tied = bool(getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", True)))
    total, non_embedding, dtype = _count_params(_weights(model_dir), tied, vocab, model_type)
    sharing = raw.get("layer_sharing")
    if sharing is not None and not isinstance(sharing, dict):
        raise CheckpointError('config.json "layer_sharing" must be an object or absent')
    _check_tokenizer(model_dir, vocab)
    return ModelInfo(
        model_type=model_type,
        architecture=architecture,
        params_total=total,
        params_non_embedding=non_embedding,
        layers=next((n for n in layers if isinstance(n, int)), 0),
        hidden_size=getattr(text, "hidden_size", 0),
        vocab_size=vocab,
        tied_embeddings=tied,
        dtype=dtype,
        layer_sharing=sharing,
    )


def _count_params(tensors: Tensors, tied: bool, vocab: int, model_type: str) -> tuple:
    """(params_total, params_non_embedding, main dtype), cross-checked with the config."""
    heads = [name for name in tensors if _is(name, _HEADS)]
    if not tied and not heads:
        raise CheckpointError(
            "config.json does not tie the word embeddings (tie_word_embeddings is false, or "
            f"absent and false by default for {model_type}) but the weights have no lm_head: "
            'set "tie_word_embeddings": true or include lm_head.weight'
        )
    for name, (_, shape) in tensors.items():
        if _is(name, _TOKEN_EMBEDDINGS + _HEADS) and shape[:1] != (vocab,):
            rows = shape[0] if shape else 0
            raise CheckpointError(f"{name} has {rows} rows but config.json says vocab_size={vocab}")
    counts = {
        name: math.prod(shape)
        for name, (_, shape) in tensors.items()
        if not (tied and name in heads) and not _is_buffer(name, shape)
    }
    by_dtype: dict[str, int] = {}
    for name, count in counts.items():
        by_dtype[tensors[name][0]] = by_dtype.get(tensors[name][0], 0) + count
    embeddings = _TOKEN_EMBEDDINGS + _POSITION_EMBEDDINGS + _HEADS
    non_embedding = sum(count for name, count in counts.items() if not _is(name, embeddings))
    dtype = _DTYPES[max(by_dtype, key=by_dtype.get)][1] if by_dtype else ""
    return sum(counts.values()), non_embedding, dtype


def _is_buffer(name: str, shape: tuple[int, ...]) -> bool:
    """Non-parameters that some checkpoints store: rotary tables, GPT-2's causal masks."""
    last = name.rsplit(".", 1)[-1]
    return last in ("inv_freq", "masked_bias") or (name.endswith("attn.bias") and len(shape) == 4)


def _is(tensor_name: str, modules: tuple[str, ...]) -> bool:
    """Whether a tensor is the weight of one of these modules, at any depth."""
    parts = tensor_name.split(".")
    return len(parts) >= 2 and parts[-1] == "weight" and parts[-2] in modules


def _read_json(path: Path, max_bytes: int = 32 * 1024**2) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path.name} is missing")
    if path.stat().st_size > max_bytes:
        raise CheckpointError(f"{path.name} is larger than {human_bytes(max_bytes)}")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path.name} is not valid JSON ({exc}): fix the file") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name} must hold a JSON object")
    return data


def _tokenizer_config(model_dir: Path) -> dict:
    path = model_dir / "tokenizer_config.json"
    return _read_json(path) if path.is_file() else {}


def _has_key(doc: object, keys: tuple[str, ...]) -> bool:
    if isinstance(doc, dict):
        return any(k in keys or _has_key(v, keys) for k, v in doc.items())
    if isinstance(doc, list):
        return any(_has_key(v, keys) for v in doc)
    return False


def _causal_lm_type(raw: dict) -> tuple[str, str]:
    import transformers
    from transformers.models.auto import modeling_auto as auto
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise CheckpointError("config.json has no model_type: save it with transformers")
    if model_type not in CONFIG_MAPPING_NAMES:
        raise CheckpointError(
            f"model_type {model_type[:60]!r} is unknown to transformers "
            f"{transformers.__version__}: use an architecture that transformers ships"
        )
    causal = auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    # Encoders (bert) and encoder-decoders (bart) have a ForCausalLM class too, but it is
    # a decoder half for another setup, not a language model to score on its own.
    other = {
        **auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        **auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    }
    if not causal or model_type in other:
        raise CheckpointError(
            f"model_type {model_type!r} is not a decoder-only causal language model"
        )
    return model_type, causal


def _weights(model_dir: Path) -> Tensors:
    """The tensors transformers would load: model.safetensors, else the indexed shards."""
    if (model_dir / "model.safetensors").is_file():
        return read_safetensors_header(model_dir / "model.safetensors")
    if not (model_dir / "model.safetensors.index.json").is_file():
        if any(p.name.endswith(PICKLE_SUFFIXES) for p in model_dir.iterdir()):
            raise CheckpointError(PICKLES_REFUSED)
        raise CheckpointError("no model.safetensors found: publish safetensors weights")
    weight_map = _read_json(model_dir / "model.safetensors.index.json").get("weight_map")
    if not isinstance(weight_map, dict) or not all(
        isinstance(v, str) and _SAFETENSORS.fullmatch(v) for v in weight_map.values()
    ):
        raise CheckpointError("model.safetensors.index.json has no valid weight_map")
    tensors: Tensors = {}
    for shard in sorted(set(weight_map.values())):
        if not (model_dir / shard).is_file():
            raise CheckpointError(f"{shard}, listed in model.safetensors.index.json, is missing")
        header = read_safetensors_header(model_dir / shard)
        if missing := [t for t, s in weight_map.items() if s == shard and t not in header]:
            raise CheckpointError(f"{shard} lacks {missing[0]}, which the index puts there")
        tensors.update(header)
    return tensors


def read_safetensors_header(path: Path) -> Tensors:
    """name → (dtype, shape) from a safetensors header, checked against the file's size.

    Layout: 8-byte little-endian header length, JSON header, then the data buffer, which
    the tensors' data_offsets must cover exactly, as the safetensors library requires.
    """
    size, name = path.stat().st_size, path.name
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8).ljust(8, b"\xff"), "little")
        if size < 8 or not 2 <= length <= _MAX_HEADER:
            raise CheckpointError(f"{name} is not a safetensors file (corrupted header)")
        if 8 + length > size:
            raise CheckpointError(f"{name} is truncated: its header runs past the end")
        try:
            header = json.loads(f.read(length))
        except (ValueError, RecursionError):
            header = None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name} has a corrupted header (not a JSON object)")
    header.pop("__metadata__", None)
    tensors: Tensors = {}
    spans = []
    for tensor, meta in header.items():
        try:
            dtype, shape, (begin, end) = meta["dtype"], meta["shape"], meta["data_offsets"]
            ints = [*shape, begin, end]
        except (TypeError, KeyError, ValueError):
            raise CheckpointError(f"{name}: tensor {tensor[:100]!r} has a bad entry") from None
        if dtype not in _DTYPES:
            raise CheckpointError(f"{name}: tensor {tensor[:100]!r} has unknown dtype {dtype!r}")
        if not all(type(i) is int and i >= 0 for i in ints) or begin > end:
            raise CheckpointError(f"{name}: tensor {tensor[:100]!r} has a bad shape or offsets")
        if math.prod(shape) * _DTYPES[dtype][0] != end - begin:
            raise CheckpointError(f"{name}: tensor {tensor[:100]!r} size does not match its shape")
        tensors[tensor] = (dtype, tuple(shape))
        spans.append((begin, end))
    covered = 0
    for begin, end in sorted(spans):
        if begin != covered:
            raise CheckpointError(f"{name} is corrupted: tensor data overlaps or has holes")
        covered = end
    if covered != size - 8 - length:
        why = "truncated" if covered > size - 8 - length else "corrupted (trailing bytes)"
        raise CheckpointError(f"{name} is {why}: re-upload the file")
    return tensors


def _check_tokenizer(model_dir: Path, vocab_size: int) -> None:
    has = [(model_dir / n).is_file() for n in ("tokenizer.json", "tokenizer.model", "vocab.json")]
    if not (has[0] or has[1] or (has[2] and (model_dir / "merges.txt").is_file())):
        raise CheckpointError(
            "missing tokenizer: include tokenizer.json (or tokenizer.model, or vocab.json and "
            "merges.txt) and tokenizer_config.json beside config.json"
        )
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    except Exception as exc:  # a broken tokenizer can fail in many ways; say which
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise CheckpointError(f"the tokenizer does not load ({why}): fix its files") from None
    if len(tokenizer) > vocab_size:
        raise CheckpointError(
            f"the tokenizer has {len(tokenizer)} tokens but the model embeds only {vocab_size}"
        )
