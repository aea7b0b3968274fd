"""What a submitter typed → a Source (no network): a Hub repo id or page, an archive URL, or
the URL of a .gguf file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from evaluator.safehttp import CheckpointError

HUB_ENDPOINT = "https://huggingface.co"
HUB_HOSTS = {"huggingface.co", "www.huggingface.co", "hf.co"}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
GGUF_SUFFIX = ".gguf"
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"{_REPO_PART}/{_REPO_PART}")
_REVISION = re.compile(r"[A-Za-z0-9._-][A-Za-z0-9._/-]{0,199}")
# Characters RFC 3986 leaves out of URLs; in a submitted URL they are markup, not a path.
_NOT_IN_URLS = '<>"{}|\\^`'


@dataclass(frozen=True)
class Source:
    kind: str  # "hub", "archive" or "gguf" (a URL of one .gguf file)
    url: str
    repo_id: str = ""
    revision: str = ""
    commit: str = ""  # the 40-hex commit a Hub revision resolved to


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
    path = parts.path.lower()
    # A Hub file URL (…/resolve/<revision>/model-Q4_1.gguf) is a plain download like any other.
    if host in HUB_HOSTS and not path.endswith((*ARCHIVE_SUFFIXES, GGUF_SUFFIX)):
        return _hub_page(parts.path)
    url = urlunsplit(parts._replace(fragment=""))
    if path.endswith(GGUF_SUFFIX):
        return Source("gguf", url)
    if not path.endswith(ARCHIVE_SUFFIXES):
        raise CheckpointError(
            "a URL must point to a .tar.gz, .tgz, .tar or .zip archive of the model directory, "
            "a .gguf file, or a Hugging Face model page"
        )
    return Source("archive", url)


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
