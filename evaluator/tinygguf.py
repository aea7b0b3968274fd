"""Write a tiny Llama checkpoint (evaluator/tinymodel.py) as a GGUF file, offline, with gguf-py's
writer, the way llama.cpp's convert_hf_to_gguf.py lays out a Llama: tensor names from gguf-py's
name map, the query and key weights reordered for llama.cpp's rotary layout, 1-D tensors (norms)
kept in F32, the byte-level BPE tokenizer as tokenizer.ggml.* metadata ("gpt2" model).

Used by the tests and benchmarks. The types are those gguf-py can encode in numpy: F32, F16,
BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (blocks of 32: every matrix dim of the tiny model is a
multiple of 32).
"""

from __future__ import annotations

import json
from pathlib import Path


def _reorder(weights, heads: int):
    """llama.cpp's rotary layout (convert_hf_to_gguf's permute); transformers undoes it."""
    rows = weights.shape[0]
    return (
        weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_gguf(model_dir: str | Path, out: str | Path, ggml_type: str = "Q8_0") -> Path:
    """model_dir (a Llama saved with transformers) → out, its matrices stored as ggml_type."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    model_dir, out = Path(model_dir), Path(out)
    cfg = json.loads((model_dir / "config.json").read_text())
    heads, kv_heads, layers = (
        cfg["num_attention_heads"],
        cfg["num_key_value_heads"],
        cfg["num_hidden_layers"],
    )
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(model_dir.name)
    writer.add_block_count(layers)
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_rope_freq_base(float(cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]))
    writer.add_rope_dimension_count(cfg["hidden_size"] // heads)
    writer.add_vocab_size(cfg["vocab_size"])
    _add_tokenizer(writer, model_dir, cfg["vocab_size"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    qtype = gguf.GGMLQuantizationType[ggml_type]
    for name, array in sorted(load_file(model_dir / "model.safetensors").items()):
        if name == "lm_head.weight" and cfg.get("tie_word_embeddings", True):
            continue
        base, suffix = name.rsplit(".", 1)
        array = array.astype(np.float32)
        if name.endswith("q_proj.weight"):
            array = _reorder(array, heads)
        elif name.endswith("k_proj.weight"):
            array = _reorder(array, kv_heads)
        target = f"{names.get_name(base)}.{suffix}"
        if array.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(target, np.ascontiguousarray(array))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(target, array.astype(np.float16))
        else:
            writer.add_tensor(target, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _add_tokenizer(writer, model_dir: Path, vocab_size: int) -> None:
    doc = json.loads((model_dir / "tokenizer.json").read_text())
    ids = {**doc["model"]["vocab"], **{t["content"]: t["id"] for t in doc["added_tokens"]}}
    special = {t["content"] for t in doc["added_tokens"] if t.get("special")}
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    for token, index in ids.items():
        tokens[index] = token
    merges = [m if isinstance(m, str) else " ".join(m) for m in doc["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in special else 1 for t in tokens])  # 3: control
    writer.add_token_merges(merges)
    for key, token in [("bos", "<s>"), ("eos", "</s>"), ("unk", "<unk>")]:
        if token in ids:
            getattr(writer, f"add_{key}_token_id")(ids[token])
