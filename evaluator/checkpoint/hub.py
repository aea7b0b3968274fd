"""The Hugging Face Hub: commit resolution and file listings through huggingface_hub's HfApi,
file downloads through safehttp (its caps, pinned addresses and redirect checks).

The endpoint is the operator's setting, never the submitter's: the submitter picks only a
repo id and a revision, both checked by source.parse_source, and HfApi quotes them.
"""

from __future__ import annotations

import importlib
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from evaluator import safehttp
from evaluator.safehttp import CheckpointError, Limits, human_bytes

from .files import PICKLE_SUFFIXES, PICKLES_REFUSED, is_needed
from .source import Source

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class HubFile:
    name: str
    size: int | None  # None when the Hub does not say
    sha256: str | None  # an LFS file's sha256, when the Hub gives it


def listing(
    source: Source, endpoint: str, allowed: safehttp.Allowed, limits: Limits, token: str | None
) -> tuple[str, list[HubFile]]:
    """(commit, files) of the source's revision (its pinned commit, when it has one)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    # No telemetry from a server; with it on, huggingface_hub also fetches a list of "agent
    # harnesses" from huggingface.co itself (whatever the endpoint) to build its user agent.
    constants.HF_HUB_DISABLE_TELEMETRY = True

    revision = source.commit or source.revision or "main"
    where = f"{source.repo_id}@{revision}"
    # The same vetting as a download: a private endpoint needs the allow-list.
    safehttp.vet(f"{endpoint}/api/models", allowed)
    api = HfApi(endpoint=endpoint, token=token or False)  # False: never a token on disk
    try:
        info = api.model_info(
            source.repo_id, revision=revision, files_metadata=True, timeout=limits.read_timeout
        )
    except OfflineModeIsEnabled:
        raise CheckpointError(
            "the Hub cannot be reached: HF_HUB_OFFLINE is set on this server"
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status == 429 or status >= 500:
            raise safehttp.HTTPStatusError(
                f"the Hub answered HTTP {status} for {where}; will try again", status
            ) from None
        raise CheckpointError(
            f"{where} was not found on the Hub, or it is private or gated: "
            "check the name and revision, or make the repository public"
        ) from None
    except (KeyError, TypeError, ValueError):  # an answer without the fields a model has
        raise CheckpointError(f"the Hub gave an unexpected answer for {where}") from None
    except _transport_errors() as exc:  # refused, reset, timed out
        raise CheckpointError(
            f"the Hub did not answer for {where} ({type(exc).__name__}); will try again",
            transient=True,
        ) from None
    sha = info.sha
    if not isinstance(sha, str) or not _COMMIT.fullmatch(sha):
        raise CheckpointError(f"the Hub gave no commit for {where}")
    if source.commit and sha != source.commit:  # the pinned commit is what runs, or nothing
        raise CheckpointError(f"the Hub answered commit {sha} for {source.commit}")
    files = []
    for sibling in info.siblings or []:
        size = sibling.size if isinstance(sibling.size, int) and sibling.size >= 0 else None
        lfs = getattr(sibling.lfs, "sha256", None) if sibling.lfs else None
        files.append(HubFile(sibling.rfilename, size, lfs if _is_sha256(lfs) else None))
    return sha, files


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's network errors (httpx2 for huggingface_hub 2, httpx for 1)."""
    errors = []
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except ImportError:
            continue
    return tuple(errors)


def _is_sha256(value) -> bool:
    return isinstance(value, str) and bool(_SHA256.fullmatch(value))


def resolve(
    source: Source, endpoint: str, allowed: safehttp.Allowed, limits: Limits, token: str | None
) -> Source:
    """Pin a Hub source to the commit its revision points at now."""
    commit, _ = listing(source, endpoint, allowed, limits, token)
    return replace(source, url=f"{endpoint}/{source.repo_id}", commit=commit)


def fetch_files(source, work: Path, endpoint, allowed, limits, token, ticker) -> tuple:
    """Download the files a model needs at the pinned commit into work/model.

    Returns (model_dir, {name: sha256}), the hashes taken while downloading."""
    commit, files = listing(source, endpoint, allowed, limits, token)
    # Subfolders (onnx/, original/ ...) hold other formats: only the root is the model.
    wanted = [f for f in files if "/" not in f.name and is_needed(f.name)]
    if not any(f.name.endswith(".safetensors") for f in wanted):
        pickles = any(f.name.endswith(PICKLE_SUFFIXES) for f in files)
        raise CheckpointError(PICKLES_REFUSED if pickles else "the repository has no weights")
    if all(f.size is not None for f in wanted):
        ticker.total = sum(f.size for f in wanted)
        if ticker.total > limits.max_download_bytes:
            raise CheckpointError(
                f"the model files add up to {human_bytes(ticker.total)}, over the "
                f"{human_bytes(limits.max_download_bytes)} limit"
            )
    model_dir = work / "model"
    model_dir.mkdir()
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    hashes = {}
    deadline = time.monotonic() + limits.deadline_s  # one deadline for all the files
    for f in wanted:
        url = f"{endpoint}/{source.repo_id}/resolve/{commit}/{quote(f.name)}"
        with open(model_dir / f.name, "xb") as out:
            got = safehttp.download(
                url,
                out,
                allowed=allowed,
                limits=limits,
                max_bytes=limits.max_download_bytes - ticker.done,
                headers=auth,
                tick=ticker,
                deadline=deadline,
            )
        expected = got.linked_sha256 or f.sha256
        if expected and expected != got.sha256:
            raise CheckpointError(f"{f.name} arrived corrupted (sha256 mismatch)", transient=True)
        hashes[f.name] = got.sha256
    return model_dir, hashes
