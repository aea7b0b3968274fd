"""Which files a model directory keeps, and the content hash over them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from evaluator.safehttp import CHUNK

# What a causal LM needs to load and tokenize; fetch() keeps these and drops the rest.
NEEDED_FILES = frozenset(
    "config.json generation_config.json model.safetensors.index.json tokenizer.json "
    "tokenizer_config.json special_tokens_map.json tokenizer.model vocab.json merges.txt "
    "added_tokens.json".split()
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
PICKLES_REFUSED = "pickle weights are refused; publish safetensors"
SAFETENSORS = re.compile(r"[A-Za-z0-9._-]+\.safetensors")
# A GGUF file (archives only: a Hub repo holds one per quantisation, and we would fetch them
# all); converted to safetensors by gguf_convert, and counted in the content hash.
GGUF = re.compile(r"[A-Za-z0-9._-]+\.gguf")


def is_needed(name: str) -> bool:
    """The files a model directory keeps (and content_hash covers)."""
    return name in NEEDED_FILES or bool(SAFETENSORS.fullmatch(name))


def is_kept(name: str) -> bool:
    """What an archive's extraction keeps: the model directory's files, or a .gguf."""
    return is_needed(name) or bool(GGUF.fullmatch(name))


def hash_of(file_hashes: dict[str, str]) -> str:
    """sha256 over the sorted (name, file sha256) pairs of the files a model keeps.

    Only kept files count (see is_kept), so the same checkpoint hashes the same whether
    it came from the Hub or an archive, with or without a README beside it. The file hashes
    are the ones taken while the files were written: nothing is read twice.
    """
    digest = hashlib.sha256()
    for name in sorted(file_hashes):
        if is_kept(name):
            digest.update(f"{name}\0{file_hashes[name]}\n".encode())
    return digest.hexdigest()


def content_hash(model_dir: Path) -> str:
    """hash_of() for a directory already on disk, reading each kept file once."""
    hashes = {}
    for path in Path(model_dir).iterdir():
        if path.is_file() and is_kept(path.name):
            file_digest = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    file_digest.update(chunk)
            hashes[path.name] = file_digest.hexdigest()
    return hash_of(hashes)
