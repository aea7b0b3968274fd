"""Hostile GGUF files: each refused with a message that says what is wrong, fast, and (the
last test) under a 3 GiB address-space cap, so a regression that believed a count or a size
shows as a failure here, not as a dead worker."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaluator.checkpoint import CheckpointError, Limits, fetch, gguf_convert, parse_source
from evaluator.checkpoint.gguf_header import read_header

ROOT = Path(__file__).resolve().parent.parent
HUGE = 2**60


def string(text: str | bytes, length: int | None = None) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw) if length is None else length) + raw


def kv(key: str, value, kind: int = 8) -> bytes:
    """A metadata pair: a string (type 8) or a uint32 (type 4)."""
    body = string(value) if kind == 8 else struct.pack("<I", value)
    return string(key) + struct.pack("<I", kind) + body


def info(name: str = "token_embd.weight", dims=(64, 512), kind: int = 0, offset: int = 0):
    """A tensor entry: dims fastest-moving first, as GGUF writes them; kind 0 is F32."""
    return string(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, kind, offset)


def gguf(kvs=None, infos=None, data_bytes: int = 64 * 512 * 4, **header) -> bytes:
    kvs = [kv("general.architecture", "llama")] if kvs is None else kvs
    infos = [info()] if infos is None else infos
    version = header.get("version", 3)
    counts = (header.get("tensors", len(infos)), header.get("metadata", len(kvs)))
    head = b"GGUF" + struct.pack("<IQQ", version, *counts) + b"".join(kvs) + b"".join(infos)
    return head + b"\0" * (-len(head) % 32) + b"\0" * data_bytes


CRAFTED = [
    pytest.param(b"GGML" + bytes(60), "is not a GGUF file", id="not-gguf"),
    pytest.param(b"GGUF\x03\x00", "truncated: its header runs past the end", id="truncated"),
    pytest.param(gguf(version=1), "is GGUF version 1, which is not supported", id="version-1"),
    pytest.param(
        b"GGUF" + struct.pack(">I", 3) + bytes(40), "is big-endian GGUF", id="big-endian"
    ),
    pytest.param(gguf(tensors=2**62), "declares 4,611,686,018,427,387,904 tensors", id="tensors"),
    pytest.param(gguf(metadata=2**62), "metadata entries (at most 65,536)", id="metadata-count"),
    pytest.param(
        gguf(kvs=[string("k", HUGE)]), "a metadata key is 1,152,921,504,606,846,976 bytes long",
        id="key-length",
    ),
    pytest.param(
        gguf(kvs=[string("general.name") + struct.pack("<I", 8) + string("x", HUGE)]),
        "the value of 'general.name' is 1,152,921,504,606,846,976 bytes long", id="string-length",
    ),
    pytest.param(
        gguf(kvs=[string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, HUGE)]),
        "truncated: its header runs past the end", id="array-count",
    ),
    # Counts the bytes do hold, but that readers after us would turn into millions of objects.
    pytest.param(
        gguf(kvs=[kv("general.architecture", "llama"),
                  string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2**20 + 1)
                  + bytes(8 * (2**20 + 1))]),
        "arrays hold more than 1,048,576 string items", id="a-million-empty-strings",
    ),
    pytest.param(
        gguf(kvs=[kv("general.architecture", "llama"),
                  string("k") + struct.pack("<IIQ", 9, 0, 2**22 + 1) + bytes(2**22 + 1)]),
        "arrays hold more than 4,194,304 array items", id="four-million-bytes-array",
    ),
    pytest.param(
        gguf(kvs=[string("k") + struct.pack("<I", 99) + bytes(8)]),
        "'k' has unknown value type 99", id="value-type",
    ),
    pytest.param(gguf(kvs=[]), "has no general.architecture", id="no-architecture"),
    pytest.param(
        gguf(infos=[info(dims=(2, 2, 2, 2, 2))]), "has 5 dims (1 to 4)", id="five-dims"
    ),
    pytest.param(
        gguf(infos=[info(dims=(2**62, 2**62, 2**62, 2**62))]),
        "over this site's 4,000,000,000 limit", id="dims-product-overflow",
    ),
    pytest.param(gguf(infos=[info(dims=(64, 0))]), "one of them 0", id="zero-dim"),
    pytest.param(
        gguf(infos=[info(kind=99)]), "has ggml type 99, which cannot be dequantised here",
        id="unknown-ggml-type",
    ),
    pytest.param(
        gguf(infos=[info(dims=(48, 512), kind=8)]), "not whole Q8_0 blocks of 32",
        id="partial-block",
    ),
    pytest.param(gguf(infos=[info(offset=2**40)]), "runs past the end of the file", id="offset"),
    pytest.param(
        gguf(data_bytes=1000), "runs past the end of the file", id="data-shorter-than-declared"
    ),
    pytest.param(gguf(infos=[info(offset=8)]), "is not aligned to 32", id="misaligned"),
    pytest.param(
        gguf(infos=[info(), info("output.weight", offset=32)], data_bytes=2 * 64 * 512 * 4),
        "overlaps another one's data", id="overlap",
    ),
    pytest.param(
        gguf(infos=[info(), info(offset=64 * 512 * 4)], data_bytes=2 * 64 * 512 * 4),
        "appears twice", id="duplicate-tensor",
    ),
    pytest.param(gguf(infos=[info("x" * 65)]), "a tensor name is 65 bytes long", id="long-name"),
    pytest.param(
        gguf(kvs=[kv("general.architecture", "evil")]),
        "holds a 'evil' model, which transformers' GGUF loader does not know", id="unknown-arch",
    ),
    pytest.param(
        gguf(kvs=[kv("general.architecture", "general")]),
        "holds a 'general' model", id="arch-named-after-a-section",
    ),
    pytest.param(
        gguf(kvs=[kv("general.architecture", "t5")]),
        "model_type 't5' is not a decoder-only causal language model", id="t5",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("data", "message"), CRAFTED)
def test_it_refuses_a_crafted_gguf_fast_with_a_clear_message(tmp_path, data, message):
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    start = time.monotonic()
    with pytest.raises(CheckpointError) as caught:
        gguf_convert.convert(path, tmp_path / "out", Limits())
    assert message in str(caught.value)
    assert time.monotonic() - start < 10 and not (tmp_path / "out").exists()


def patched(source: Path, key: str, value: int) -> bytes:
    """source with the uint32 metadata value of key replaced."""
    data = bytearray(source.read_bytes())
    at = data.index(string(key)) + len(string(key))
    assert struct.unpack_from("<I", data, at) == (4,)
    struct.pack_into("<I", data, at + 4, value)
    return bytes(data)


def renamed(source: Path, old: str, new: str) -> bytes:
    assert len(old) == len(new)
    return source.read_bytes().replace(string(old), string(new))


def with_nan(source: Path, tensor: str) -> bytes:
    data = bytearray(source.read_bytes())
    header = read_header(source)
    where = next(t for t in header.tensors if t.name == tensor)
    struct.pack_into("<f", data, header.data_start + where.offset, float("nan"))
    return bytes(data)


REAL = [
    pytest.param(
        lambda g: g.read_bytes()[:300], {}, "truncated: its header runs past the end",
        id="cut-in-the-header",
    ),
    pytest.param(
        lambda g: g.read_bytes()[:-100], {}, "runs past the end of the file", id="cut-in-the-data"
    ),
    pytest.param(
        lambda g: patched(g, "llama.block_count", 10**6), {},
        "metadata asks for 1000000 layers; its tensors hold 2", id="a-million-layers",
    ),
    pytest.param(
        lambda g: patched(g, "llama.embedding_length", 2**24), {},
        "over this site's limit of 4,000,000,000", id="width-16M",
    ),
    pytest.param(
        lambda g: patched(g, "llama.vocab_size", 600), {},
        "model.gguf's metadata and tensors disagree (config.json here is what its metadata "
        "describes): model.embed_tokens.weight has shape [512, 64] in the weights but "
        "config.json makes it [600, 64]", id="vocabulary-larger-than-the-embedding",
    ),
    pytest.param(
        lambda g: renamed(g, "blk.0.attn_v.weight", "blk.0.attn_x.weight"), {},
        "the weights lack model.layers.0.self_attn.v_proj.weight", id="missing-weight",
    ),
    pytest.param(
        lambda g: g.read_bytes(), {"max_params": 10_000},
        "tensor 'token_embd.weight' has dims [64, 512], over this site's 10,000 limit",
        id="over-parameter-limit",
    ),
    pytest.param(
        lambda g: with_nan(g, "output_norm.weight"), {},
        "model.norm.weight holds NaN or infinite values", id="nan-weight",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("build", "limits", "message"), REAL)
def test_it_refuses_a_broken_real_gguf_over_http_and_leaves_nothing(
    served_gguf, tmp_path, build, limits, message
):
    name = f"hostile-{os.urandom(4).hex()}.gguf"
    (served_gguf.root / name).write_bytes(build(served_gguf.root / "tiny-F32.gguf"))
    (tmp_path / "models").mkdir()
    dest = tmp_path / "models" / "m1"
    with pytest.raises(CheckpointError) as caught:
        fetch(
            parse_source(f"{served_gguf.url}/{name}"),
            dest,
            allowed_hosts=[f"127.0.0.1:{served_gguf.app.port}"],
            limits=Limits(connect_timeout=2, read_timeout=5, **limits),
        )
    assert message in str(caught.value)
    assert list((tmp_path / "models").iterdir()) == []


def test_a_header_larger_than_the_metadata_budget_is_refused_unread(tmp_path):
    path = tmp_path / "model.gguf"
    # Each string fits what was read; together they run past it.
    big = [kv(f"general.note{i}", "x" * (5 * 1024**2)) for i in range(2)]
    path.write_bytes(gguf(kvs=[kv("general.architecture", "llama"), *big]))
    with pytest.raises(CheckpointError) as caught:
        read_header(path, Limits(max_tokenizer_bytes=1024**2))
    assert "header is larger than this site's" in str(caught.value)


CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))
from pathlib import Path
from evaluator.checkpoint import CheckpointError, Limits, gguf_convert
for path in sys.argv[1:]:
    try:
        gguf_convert.convert(Path(path), Path(path + ".out"), Limits())
        print("ACCEPTED")
    except CheckpointError as exc:
        print("REFUSED", exc)
    except MemoryError:
        print("EXHAUSTED")
"""


def test_every_crafted_gguf_is_refused_under_a_3_gib_cap(tmp_path, served_gguf):
    real = served_gguf.root / "tiny-F32.gguf"
    cases = [p.values[0] for p in CRAFTED]
    cases += [patched(real, "llama.block_count", 10**6)]
    cases += [patched(real, "llama.embedding_length", 2**24)]
    paths = []
    for i, data in enumerate(cases):
        paths.append(tmp_path / f"case{i}.gguf")
        paths[-1].write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CAPPED, *map(str, paths)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    lines = [line for line in out.stdout.splitlines() if line]
    assert len(lines) == len(paths), (out.stdout, out.stderr[-3000:])
    assert all(line.startswith("REFUSED") for line in lines), lines


def test_it_refuses_tensors_that_together_hold_more_than_the_parameter_limit(tmp_path):
    path = tmp_path / "model.gguf"
    tensors = [info("a.weight", (64, 200)), info("b.weight", (64, 200), offset=64 * 200 * 4)]
    path.write_bytes(gguf(infos=tensors, data_bytes=2 * 64 * 200 * 4))
    assert read_header(path, Limits(max_params=30_000)).elements == 25_600
    with pytest.raises(CheckpointError) as caught:
        read_header(path, Limits(max_params=20_000))
    assert "holds 25,600 weights, over this site's limit of 20,000" in str(caught.value)
