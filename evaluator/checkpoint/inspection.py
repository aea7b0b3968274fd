"""inspect(): what a model directory is, from config.json and the safetensors headers.

Never reads tensor data and never opens pickles: a checkpoint is checked before anything
is allocated for it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from evaluator.safehttp import CheckpointError, Limits, human_bytes

from . import skeleton, tokenizer
from .codekeys import refuse_code_keys
from .files import PICKLE_SUFFIXES, PICKLES_REFUSED, SAFETENSORS

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


def inspect(model_dir: Path, limits: Limits | None = None) -> ModelInfo:
    """Check that model_dir is a loadable, safe causal LM and describe it; no tensor data read.

    params_total counts every parameter once (a stored copy of a tied head is the embedding
    again) and is the count that loading will build (see skeleton.check).
    params_non_embedding leaves out the token embeddings, learned position
    embeddings and an untied output head, as MobileLLM and the scaling-law papers count.
    """
    model_dir, limits = Path(model_dir), limits or Limits()
    raw = _read_json(model_dir / "config.json")
    tokenizer.check_sizes(model_dir, limits.max_tokenizer_bytes)
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
        refuse_code_keys(name, doc)
    model_type, architecture = causal_lm_type(raw)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
    except Exception as exc:  # any bad value: the message is the useful part
        raise CheckpointError(f"config.json is not a valid {model_type} config: {exc}") from None
    text = config.get_text_config()
    layers = [getattr(text, k, None) for k in ("num_hidden_layers", "n_layer", "num_layers")]
    vocab = getattr(text, "vocab_size", 0)
    tied = bool(getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", True)))
    tensors = weight_headers(model_dir)
    _, non_embedding, dtype = _count_params(tensors, tied, vocab, model_type)
    plan = skeleton.check(config, tensors, limits.max_params)
    sharing = raw.get("layer_sharing")
    if sharing is not None and not isinstance(sharing, dict):
        raise CheckpointError('config.json "layer_sharing" must be an object or absent')
    tokenizer.check(model_dir, vocab)
    return ModelInfo(
        model_type=model_type,
        architecture=architecture,
        params_total=plan.params,
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


def causal_lm_type(raw: dict) -> tuple[str, str]:
    """(model_type, causal LM class name) of a config dict this site accepts: a decoder-only
    causal LM that transformers ships (also what a GGUF's metadata must describe)."""
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


def weight_files(model_dir: Path) -> list[Path]:
    """The safetensors files transformers would load (after inspect() accepted the folder)."""
    if (model_dir / "model.safetensors").is_file():
        return [model_dir / "model.safetensors"]
    weight_map = _read_json(model_dir / "model.safetensors.index.json")["weight_map"]
    return [model_dir / shard for shard in sorted(set(weight_map.values()))]


def weight_headers(model_dir: Path) -> Tensors:
    """The tensors transformers would load: model.safetensors, else the indexed shards."""
    if (model_dir / "model.safetensors").is_file():
        return read_safetensors_header(model_dir / "model.safetensors")
    if not (model_dir / "model.safetensors.index.json").is_file():
        if any(p.name.endswith(PICKLE_SUFFIXES) for p in model_dir.iterdir()):
            raise CheckpointError(PICKLES_REFUSED)
        raise CheckpointError("no model.safetensors found: publish safetensors weights")
    weight_map = _read_json(model_dir / "model.safetensors.index.json").get("weight_map")
    if not isinstance(weight_map, dict) or not all(
        isinstance(v, str) and SAFETENSORS.fullmatch(v) for v in weight_map.values()
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
