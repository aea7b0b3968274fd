"""A GGUF file → a plain Hugging Face model directory (config.json, model.safetensors,
tokenizer), which the rest of the evaluator then inspects and runs like any other.

Order matters, each step bounding the next: our own header read (gguf_header: counts,
lengths, dims, types and offsets within caps), the architecture (one transformers' GGUF
loader knows and this site accepts as a causal LM), the config's code-picking keys, the
layer count and the model's size on the meta device, and only then the dequantisation
(transformers' GGUF loader with gguf-py's numpy dequantisers, nothing allocated beyond the
float32 copy of weights already counted), whose result must match the model name by name
and shape by shape. transformers' `from_pretrained(gguf_file=...)` is not used: it can swap
in packed-GGUF modules and fetch an attention kernel from the Hub, and its model cannot be
`save_pretrained`; we build the plain state dict and save it ourselves.

The tokenizer comes from the files beside the .gguf when an archive brings them, else from
the GGUF's own metadata (tokenizer.ggml.*), built by transformers' GGUF tokenizer mapping.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evaluator.safehttp import CheckpointError, Limits

from . import skeleton, tokenizer
from .codekeys import refuse_code_keys
from .gguf_header import Header, read_header

SUFFIX = ".gguf"
_BLOCK_INDEX = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True)
class GGUFInfo:
    gguf_type: str  # the dominant ggml type of the weight matrices: "Q4_1", "Q8_0", "F16"
    file_bytes: int  # the .gguf file's size
    architecture: str  # general.architecture, as the file names it ("llama")
    tensor_types: dict[str, int]  # ggml type → weight elements stored in it


def convert(
    gguf_path: Path,
    out_dir: Path,
    limits: Limits,
    tokenizer_dir: Path | None = None,
    tick: Callable[[], None] = lambda: None,
) -> GGUFInfo:
    """Write the model gguf_path holds to out_dir (which must not exist); returns GGUFInfo.

    tick() runs between the steps (each may take tens of seconds on a large model): the
    pipeline's heartbeat and cancellation check."""
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    header = read_header(gguf_path, limits)
    tick()
    config = _config(gguf_path, header)
    tick()
    layers = skeleton.layer_count(config)
    held = {int(m.group(1)) for t in header.tensors for m in [_BLOCK_INDEX.match(t.name)] if m}
    if layers > len(held):
        raise CheckpointError(
            f"{gguf_path.name}'s metadata asks for {layers} layers; its tensors hold {len(held)}"
        )
    model = skeleton.on_meta(config)
    elements = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    if elements > limits.max_params:
        raise CheckpointError(
            f"the model needs {elements:,} parameters and buffers, over this site's limit of "
            f"{limits.max_params:,}"
        )
    tick()
    tensors = _dequantise(gguf_path, model)
    tick()
    shapes = {name: ("F32", tuple(t.shape)) for name, t in tensors.items()}
    try:
        skeleton.check(config, shapes, limits.max_params)
    except CheckpointError as exc:  # its "config.json" is the one the metadata describes
        raise CheckpointError(
            f"{gguf_path.name}'s metadata and tensors disagree (config.json here is what "
            f"its metadata describes): {exc}"
        ) from None
    out_dir.mkdir()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, out_dir / "model.safetensors")
    del tensors
    tick()
    config.save_pretrained(out_dir)
    if tokenizer_dir is not None and any((tokenizer_dir / n).is_file() for n in tokenizer.FILES):
        for name in tokenizer.FILES:
            if (tokenizer_dir / name).is_file():
                shutil.copyfile(tokenizer_dir / name, out_dir / name)
    else:
        _tokenizer_from_metadata(gguf_path, header).save_pretrained(out_dir)
    counts: dict[str, int] = {}
    for t in header.tensors:
        counts[t.ggml_type] = counts.get(t.ggml_type, 0) + t.elements
    return GGUFInfo(header.dominant_type(), header.file_bytes, header.architecture, counts)


def _config(gguf_path: Path, header: Header):
    """The transformers config the file's metadata describes, through the project's rules."""
    from transformers import CONFIG_MAPPING
    from transformers.modeling_gguf_pytorch_utils import (
        GGUF_SUPPORTED_ARCHITECTURES,
        load_gguf_checkpoint,
    )

    from .inspection import causal_lm_type

    arch = header.architecture
    # The loader's table also has its "general" and "tokenizer" sections: not architectures.
    known = set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"}
    if arch not in known:
        raise CheckpointError(
            f"{gguf_path.name} holds a {arch[:60]!r} model, which transformers' GGUF loader "
            f"does not know (it reads {', '.join(sorted(known))})"
        )
    try:
        parsed = load_gguf_checkpoint(str(gguf_path), return_tensors=False)["config"]
    except MemoryError:
        raise
    except Exception as exc:  # a value the loader trips on, in whichever way: say which
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise CheckpointError(f"{gguf_path.name}'s metadata cannot be read ({why})") from None
    parsed.pop("_model_name_or_path", None)
    refuse_code_keys(gguf_path.name, parsed)
    model_type, _ = causal_lm_type(parsed)
    parsed.pop("model_type")
    try:
        return CONFIG_MAPPING[model_type](**parsed)
    except Exception as exc:  # any bad value: the message is the useful part
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise CheckpointError(
            f"{gguf_path.name}'s metadata is not a valid config ({why})"
        ) from None


def _dequantise(gguf_path: Path, model) -> dict:
    """{transformers name: float32 tensor}, via transformers' GGUF loader (which also undoes
    llama.cpp's reordering of the attention weights for rotary embeddings)."""
    import torch
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    try:
        parsed = load_gguf_checkpoint(
            str(gguf_path), return_tensors=True, model_to_load=model, torch_dtype=torch.float32
        )
    except MemoryError:
        raise
    except Exception as exc:  # a tensor the loader trips on, in whichever way: say which
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise CheckpointError(f"{gguf_path.name}'s tensors cannot be dequantised ({why})") from None
    return parsed["tensors"]


def _tokenizer_from_metadata(gguf_path: Path, header: Header):
    """The tokenizer the file's tokenizer.ggml.* keys describe, and nothing more: transformers'
    GPT-2 builder adds "<|endoftext|>" as a default unknown token, which a Llama-3-style
    vocabulary does not hold and whose id would fall past the embedding."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf import convert_gguf_tokenizer, get_gguf_tokenizer

    if "tokenizer.ggml.tokens" not in header.metadata:
        raise CheckpointError(
            f"{gguf_path.name} has no tokenizer in its metadata: put it in an archive with its "
            "tokenizer files (tokenizer.json, tokenizer_config.json)"
        )
    try:
        arch, spec, special = get_gguf_tokenizer(str(gguf_path))
        backend, _ = convert_gguf_tokenizer(arch, spec)
    except Exception as exc:  # a tokenizer can be broken in many ways; say which
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise CheckpointError(f"{gguf_path.name}'s tokenizer cannot be built ({why})") from None
    tokens = spec["tokens"]
    doc = json.loads(backend.to_str())
    doc["added_tokens"] = [
        added
        for added in doc.get("added_tokens", [])
        if added.get("id", len(tokens)) < len(tokens) and tokens[added["id"]] == added["content"]
    ]
    named = {k: v for k, v in special.items() if isinstance(v, (str, bool))}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(doc)), **named)
