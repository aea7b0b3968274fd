"""Build small Llama-architecture checkpoints with random weights, offline.

Used by the tests, the benchmarks and the offline demo: nothing here downloads anything.
The tokenizer is a byte-level BPE trained on the spot on a built-in English corpus, so
every string tokenizes (no unknown tokens) and the files are a normal Hugging Face model
directory: config.json, model.safetensors, tokenizer.json, tokenizer_config.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

_CORPUS = """
The quick brown fox jumps over the lazy dog. A small model can run on a phone.
Question: Which of these would help a plant grow? Answer: sunlight and water.
The students measured the temperature of the water every hour for a day.
She put the ice cream in the freezer so that it would not melt in the sun.
He wanted to open the jar, so he ran the lid under hot water first.
Is the sky blue on a clear day? Yes. Can a fish climb a tree? No.
Birds build nests in spring; squirrels store nuts for the winter months.
Energy from the sun is stored in plants and passed on to the animals that eat them.
To boil an egg, put it in a pot of water, heat it, and wait ten minutes.
The man opened the door, looked outside, and decided to take an umbrella.
Sarah gave her friend a gift because it was her birthday, and she was happy.
Metal spoons get hot in soup because metal conducts heat better than wood.
A magnet attracts iron nails but not pieces of paper or plastic cups.
The library was quiet; people read books, wrote notes and studied for exams.
Wind, water and ice slowly break rocks into sand and soil over many years.
"""


@dataclass(frozen=True)
class TinySpec:
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 2
    ffn: int = 128
    vocab: int = 512
    tied: bool = True
    max_positions: int = 1024
    seed: int = 0
    # Immediate block-wise layer sharing (MobileLLM-LS): each stored block runs this many
    # times in a row. 1 means no sharing. See evaluator/modeling.py for the config key.
    share_repeats: int = 1
    # "llama" (rotary positions), "gpt2" (learned absolute positions, Conv1D layers),
    # "gpt_neox" (partial rotary, parallel residual) or "opt" (offset learned positions).
    arch: str = "llama"


# The MobileLLM-125M shape (paper, Table 2): 30 layers, width 576, 9 heads, 3 KV heads.
MOBILELLM_125M = TinySpec(
    layers=30, hidden=576, heads=9, kv_heads=3, ffn=1536, vocab=32000, max_positions=2048
)
# GPT-2 small's shape (124M): 12 layers, width 768, 12 heads, vocabulary 50,257.
GPT2_124M = TinySpec(
    layers=12, hidden=768, heads=12, kv_heads=12, ffn=3072, vocab=50257, max_positions=1024,
    arch="gpt2",
)  # fmt: skip


def train_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on the built-in corpus, as a transformers object."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab_size, 2048),
        special_tokens=["<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    tok.train_from_iterator(lines * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def build_tiny_model(out_dir: str | Path, spec: TinySpec = TinySpec()) -> Path:
    """Write a random-weight Llama checkpoint with a freshly trained tokenizer to out_dir."""
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(spec.vocab)
    vocab = max(spec.vocab, len(tokenizer))
    config = _config(spec, vocab, tokenizer.bos_token_id, tokenizer.eos_token_id)
    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if spec.share_repeats > 1:
        cfg_path = out / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["layer_sharing"] = {"scheme": "immediate_block_wise", "repeats": spec.share_repeats}
        cfg_path.write_text(json.dumps(cfg, indent=2))
    return out


def _config(spec: TinySpec, vocab: int, bos: int, eos: int):
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig, OPTConfig

    common = {"vocab_size": vocab, "bos_token_id": bos, "eos_token_id": eos,
              "tie_word_embeddings": spec.tied}  # fmt: skip
    if spec.arch == "llama":
        return LlamaConfig(
            hidden_size=spec.hidden, intermediate_size=spec.ffn,
            num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
            num_key_value_heads=spec.kv_heads, max_position_embeddings=spec.max_positions,
            **common,
        )  # fmt: skip
    if spec.arch == "gpt2":
        return GPT2Config(
            n_embd=spec.hidden, n_inner=spec.ffn, n_layer=spec.layers, n_head=spec.heads,
            n_positions=spec.max_positions, **common,
        )  # fmt: skip
    if spec.arch == "gpt_neox":
        return GPTNeoXConfig(
            hidden_size=spec.hidden, intermediate_size=spec.ffn,
            num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
            max_position_embeddings=spec.max_positions, rotary_pct=0.25, **common,
        )  # fmt: skip
    if spec.arch == "opt":
        return OPTConfig(
            hidden_size=spec.hidden, ffn_dim=spec.ffn, num_hidden_layers=spec.layers,
            num_attention_heads=spec.heads, max_position_embeddings=spec.max_positions,
            word_embed_proj_dim=spec.hidden, **common,
        )  # fmt: skip
    raise ValueError(f"unknown tiny architecture {spec.arch!r}")
