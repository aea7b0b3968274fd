"""Load a verified local checkpoint directory into a runnable causal LM.

The one place that turns a model directory into a torch module, shared by the harness and
the latency probe. Safetensors only, never remote code.
"""

from __future__ import annotations

from pathlib import Path

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def pick_device(requested: str | None = None) -> str:
    import torch

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(model_dir: str | Path, device: str | None = None, dtype: str = "float32"):
    """Return (model, tokenizer) in eval mode on the device."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    device = pick_device(device)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype=getattr(torch, DTYPES[dtype]),
        use_safetensors=True,
        trust_remote_code=False,
    )
    model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    return model, tokenizer
