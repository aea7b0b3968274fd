"""A GGUF file's header read by us, within caps, before any library touches the file.

GGUF (llama.cpp's format): magic "GGUF", version, tensor count, metadata count, the metadata
key/value pairs, one entry per tensor (name, dims, ggml type, offset), padding to the
alignment, then the tensor data. Every count and length in it is a 64-bit integer that a
crafted file can set to anything, and the readers we use afterwards (gguf-py's, transformers')
believe them: a count of 2**60 is a loop that never ends or an allocation that never fits.
So this module reads the header itself with bounded struct reads and refuses, before anything
else opens the file: a truncated header, counts past this site's caps, strings and arrays
longer than the bytes left, more than 4 dims, a dim of 0 or an element count past
CHECKPOINT_MAX_PARAMS, a ggml type no dequantiser knows, tensor data that overlaps, is
misaligned or runs past the end of the file. Only the header's bytes are read (at most
`_header_cap(limits)`), never the tensor data.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from evaluator.safehttp import CheckpointError, Limits, human_bytes

MAX_TENSORS = 1 << 16  # a 100-layer model has ~1,000; far more is a file built to stall us
MAX_METADATA = 1 << 16
MAX_NAME = 64  # GGML_MAX_NAME: llama.cpp itself refuses longer tensor names
MAX_KEY = 1024
MAX_DIMS = 4  # GGML_MAX_DIMS
# Items in the metadata's arrays, all of them together. The libraries that read the file
# after us build Python objects per item (gguf-py: ~1.75 GB and 40 s for a million strings,
# measured), so bytes alone are not the bound. The largest real vocabularies: ~262,000
# tokens (Gemma 3), Llama 3's 128,256 tokens with 280,147 merges.
MAX_STRING_ITEMS = 1 << 20
MAX_ARRAY_ITEMS = 1 << 22
# Header bytes beyond the metadata budget: the tensor table (≤ ~100 bytes an entry).
_TABLE_BYTES = MAX_TENSORS * (8 + MAX_NAME + 4 + 8 * MAX_DIMS + 4 + 8)
_FIXED = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
          10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9
_KEPT_ITEMS = 64  # longer arrays are kept as their length


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]  # torch order (GGUF writes the fastest-moving dim first)
    ggml_type: str  # "Q4_1", "F16", ...
    offset: int  # from the start of the data section
    nbytes: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Header:
    version: int
    metadata: dict  # key → value; arrays longer than 64 items are kept as their length
    tensors: list[Tensor]
    data_start: int
    file_bytes: int

    @property
    def architecture(self) -> str:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else ""

    @property
    def elements(self) -> int:
        return sum(t.elements for t in self.tensors)

    def dominant_type(self) -> str:
        """The ggml type holding most weight-matrix elements (2-D and up): "Q4_1", "Q8_0", "F16".

        Norms and biases (1-D) stay F32 in every quantised file, and mixed files (llama.cpp's
        Q4_K_M keeps some matrices in Q6_K) are named by what most of the weights are.
        """
        counts: dict[str, int] = {}
        for tensor in self.tensors:
            if len(tensor.shape) >= 2:
                counts[tensor.ggml_type] = counts.get(tensor.ggml_type, 0) + tensor.elements
        if not counts:
            counts = {t.ggml_type: t.elements for t in self.tensors}
        return max(sorted(counts), key=counts.get) if counts else ""


def ggml_types() -> dict[int, tuple[str, int, int]]:
    """ggml type id → (name, elements per block, bytes per block), for the types gguf-py can
    dequantise (plain floats and the block formats gguf.quants implements)."""
    from gguf import quants
    from gguf.constants import GGML_QUANT_SIZES
    from gguf.constants import GGMLQuantizationType as T

    plain = {T.F32, T.F16, T.BF16}
    return {
        int(t): (t.name, *GGML_QUANT_SIZES[t])
        for t in T
        if t in GGML_QUANT_SIZES and (t in plain or t in quants._type_traits)
    }


def _header_cap(limits: Limits) -> int:
    # The metadata is mostly the tokenizer (vocabulary, merges): capped as tokenizer files are.
    return limits.max_tokenizer_bytes + _TABLE_BYTES


class _Reader:
    """struct reads from the header's bytes, each checked against what is there."""

    def __init__(self, data: bytes, name: str, whole_file: bool, cap: int) -> None:
        self.data, self.pos, self.name = data, 0, name
        self.whole_file, self.cap = whole_file, cap
        self.items = {"array": 0, "string": 0}  # counted against MAX_*_ITEMS

    def need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            if self.whole_file:
                raise CheckpointError(f"{self.name} is truncated: its header runs past the end")
            raise CheckpointError(
                f"{self.name}'s header is larger than this site's {human_bytes(self.cap)} limit"
            )

    def fixed(self, fmt: str):
        size = struct.calcsize(fmt)
        self.need(size)
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self, limit: int, what: str) -> str:
        length = self.fixed("<Q")
        if length > limit:
            raise CheckpointError(
                f"{self.name}: {what} is {length:,} bytes long, over the {limit:,} allowed"
            )
        self.need(length)
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{self.name}: {what} is not UTF-8") from None

    def _count_items(self, count: int, strings: bool) -> None:
        self.items["array"] += count
        self.items["string"] += count if strings else 0
        for kind, cap in (("array", MAX_ARRAY_ITEMS), ("string", MAX_STRING_ITEMS)):
            if self.items[kind] > cap:
                raise CheckpointError(
                    f"{self.name}'s metadata arrays hold more than {cap:,} {kind} items "
                    "(the largest real vocabularies hold about 262,000 tokens)"
                )

    def value(self, kind: int, key: str, depth: int = 0):
        if kind in _FIXED:
            return self.fixed(_FIXED[kind])
        if kind == _STRING:
            return self.string(len(self.data), f"the value of {key[:80]!r}")
        if kind != _ARRAY or depth:
            raise CheckpointError(f"{self.name}: {key[:80]!r} has unknown value type {kind}")
        item, count = self.fixed("<I"), self.fixed("<Q")
        if item not in _FIXED and item != _STRING:
            raise CheckpointError(f"{self.name}: {key[:80]!r} is an array of unknown type {item}")
        # Every element takes at least one byte (a string at least its 8-byte length), so a
        # count larger than the bytes left is a lie, refused before looping over it.
        least = 8 if item == _STRING else struct.calcsize(_FIXED[item])
        self.need(count * least)
        self._count_items(count, item == _STRING)
        if count <= _KEPT_ITEMS:
            return [self.value(item, key, depth + 1) for _ in range(count)]
        # A vocabulary, its scores and merges: walked over and kept as a count (the library
        # reads them later, from a header now known to be sound).
        if item != _STRING:
            self.pos += count * least
        for _ in range(count if item == _STRING else 0):
            length = self.fixed("<Q")
            self.need(length)
            self.pos += length
        return count


def read_header(path: Path, limits: Limits | None = None) -> Header:
    """Parse and check path's header (see the module docstring); reads no tensor data."""
    path, limits = Path(path), limits or Limits()
    name, size, cap = path.name, path.stat().st_size, _header_cap(limits)
    with open(path, "rb") as f:
        data = f.read(min(size, cap))
    r = _Reader(data, name, whole_file=size <= cap, cap=cap)
    r.need(4)
    if data[:4] != b"GGUF":
        raise CheckpointError(f"{name} is not a GGUF file (it does not start with 'GGUF')")
    r.pos = 4
    version = r.fixed("<I")
    if version not in (2, 3):
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        why = "big-endian GGUF" if swapped in (2, 3) else f"GGUF version {version}"
        raise CheckpointError(f"{name} is {why}, which is not supported: use GGUF v3")
    n_tensors, n_meta = r.fixed("<Q"), r.fixed("<Q")
    if n_tensors > MAX_TENSORS or n_tensors == 0:
        raise CheckpointError(
            f"{name} declares {n_tensors:,} tensors (this site accepts 1 to {MAX_TENSORS:,})"
        )
    if n_meta > MAX_METADATA:
        raise CheckpointError(
            f"{name} declares {n_meta:,} metadata entries (at most {MAX_METADATA:,})"
        )
    metadata: dict = {}
    for _ in range(n_meta):
        key = r.string(MAX_KEY, "a metadata key")
        metadata[key] = r.value(r.fixed("<I"), key)
    types = ggml_types()
    entries = [_tensor_entry(r, types, limits.max_params) for _ in range(n_tensors)]
    alignment = metadata.get("general.alignment", 32)
    if type(alignment) is not int or not 1 <= alignment <= 1 << 16 or alignment & (alignment - 1):
        raise CheckpointError(f"{name}: general.alignment must be a power of two up to 65536")
    data_start = -(-r.pos // alignment) * alignment
    tensors = _place(entries, alignment, data_start, size, name)
    header = Header(version, metadata, tensors, data_start, size)
    if header.elements > limits.max_params:
        raise CheckpointError(
            f"{name} holds {header.elements:,} weights, over this site's limit of "
            f"{limits.max_params:,}"
        )
    if not header.architecture:
        raise CheckpointError(f"{name} has no general.architecture in its metadata")
    return header


def _tensor_entry(r: _Reader, types: dict, max_elements: int) -> tuple:
    name = r.string(MAX_NAME, "a tensor name")
    n_dims = r.fixed("<I")
    if not 1 <= n_dims <= MAX_DIMS:
        raise CheckpointError(f"{r.name}: tensor {name!r} has {n_dims:,} dims (1 to {MAX_DIMS})")
    dims = [r.fixed("<Q") for _ in range(n_dims)]
    type_id, offset = r.fixed("<I"), r.fixed("<Q")
    elements = 1
    for dim in dims:  # checked one dim at a time: the product of four 2**63s is not a size
        elements *= dim
        if dim == 0 or elements > max_elements:
            raise CheckpointError(
                f"{r.name}: tensor {name!r} has dims {dims}, "
                + ("one of them 0" if dim == 0 else f"over this site's {max_elements:,} limit")
            )
    if type_id not in types:
        raise CheckpointError(
            f"{r.name}: tensor {name!r} has ggml type {type_id}, which cannot be dequantised here"
        )
    kind, block, block_bytes = types[type_id]
    if dims[0] % block:
        raise CheckpointError(
            f"{r.name}: tensor {name!r} has {dims[0]} columns, not whole {kind} blocks of {block}"
        )
    return name, tuple(reversed(dims)), kind, offset, elements // block * block_bytes


def _place(entries: list, alignment: int, data_start: int, size: int, name: str) -> list:
    """The tensors, each one's data aligned, inside the file and apart from the others."""
    tensors, seen, end = [], set(), 0
    for tensor_name, shape, kind, offset, nbytes in sorted(entries, key=lambda e: e[3]):
        if tensor_name in seen:
            raise CheckpointError(f"{name}: tensor {tensor_name!r} appears twice")
        seen.add(tensor_name)
        if offset % alignment:
            raise CheckpointError(f"{name}: tensor {tensor_name!r} is not aligned to {alignment}")
        if offset < end:
            raise CheckpointError(f"{name}: tensor {tensor_name!r} overlaps another one's data")
        end = offset + nbytes
        if data_start + end > size:
            raise CheckpointError(
                f"{name}: tensor {tensor_name!r}'s data runs past the end of the file "
                "(truncated, or its offset is wrong)"
            )
        tensors.append(Tensor(tensor_name, shape, kind, offset, nbytes))
    return tensors
