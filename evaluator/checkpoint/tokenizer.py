"""The tokenizer files: capped in size before anything parses them, their vocabulary checked
against the model's embedding rows before the tokenizer is built, then built once to prove it
loads. A token id past the embedding's last row would fail mid-evaluation (on a GPU, as a
device-side assert that takes the worker's CUDA context with it)."""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.safehttp import CheckpointError, human_bytes

FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


def check_sizes(model_dir: Path, max_bytes: int) -> None:
    """Refuse an oversized tokenizer file before any of them is read."""
    for name in FILES:
        path = model_dir / name
        if path.is_file() and path.stat().st_size > max_bytes:
            raise CheckpointError(
                f"{name} is {human_bytes(path.stat().st_size)}, over this site's "
                f"{human_bytes(max_bytes)} limit for tokenizer files"
            )


def check(model_dir: Path, vocab_size: int) -> None:
    has = [(model_dir / n).is_file() for n in ("tokenizer.json", "tokenizer.model", "vocab.json")]
    if not (has[0] or has[1] or (has[2] and (model_dir / "merges.txt").is_file())):
        raise CheckpointError(
            "missing tokenizer: include tokenizer.json (or tokenizer.model, or vocab.json and "
            "merges.txt) and tokenizer_config.json beside config.json"
        )
    _check_ids(model_dir, vocab_size)
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


def _check_ids(model_dir: Path, vocab_size: int) -> None:
    """The largest token id in tokenizer.json or vocab.json, read as plain JSON (cheap next to
    building the tokenizer, and it catches ids past the end, which len(tokenizer) does not)."""
    ids: list[int] = []
    for name in ("tokenizer.json", "vocab.json", "added_tokens.json", "tokenizer_config.json"):
        path = model_dir / name
        if not path.is_file():
            continue
        try:
            doc = json.loads(path.read_bytes())
        except (ValueError, RecursionError):
            raise CheckpointError(f"{name} is not valid JSON: fix the file") from None
        if name == "tokenizer_config.json":  # added_tokens_decoder: {"id": {...}}
            added = doc.get("added_tokens_decoder") if isinstance(doc, dict) else None
            ids += [int(k) for k in added or {} if isinstance(k, str) and k.isdigit()]
        else:
            ids += _token_ids(doc)
    if ids and max(ids) >= vocab_size:
        raise CheckpointError(
            f"the tokenizer has token id {max(ids)} but the model embeds only {vocab_size} "
            f"tokens (ids 0 to {vocab_size - 1}): the tokenizer does not fit these weights"
        )


def _token_ids(doc) -> list[int]:
    if not isinstance(doc, dict):
        return []
    if "model" not in doc:  # vocab.json, added_tokens.json: token -> id
        return [v for v in doc.values() if isinstance(v, int)]
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    vocab = model.get("vocab")
    ids: list[int] = []
    if isinstance(vocab, dict):  # BPE, WordPiece, WordLevel: token -> id
        ids = [v for v in vocab.values() if isinstance(v, int)]
    elif isinstance(vocab, list):  # Unigram: [token, score] pairs, ids by position
        ids = [len(vocab) - 1] if vocab else []
    for added in doc.get("added_tokens") or []:
        if isinstance(added, dict) and isinstance(added.get("id"), int):
            ids.append(added["id"])
    return ids
