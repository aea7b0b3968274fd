"""The weights must fit the model that config.json describes, checked before anything is
allocated: the model is built on the meta device (shapes, no storage) and each of its
parameters and persistent buffers is matched by name and shape against the safetensors
headers. Without this, a config can ask for any size (transformers believes it and
allocates) and a missing weight is silently random-initialised, then scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evaluator.safehttp import CheckpointError, human_bytes

Tensors = dict[str, tuple[str, tuple[int, ...]]]
# Where decoder layers keep their index, across the architectures transformers ships:
# model.layers.3. (llama, opt, phi), transformer.h.3. (gpt2, falcon), transformer.blocks.3.
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks)\.(\d+)\.")
# Leftovers older transformers saved beside the weights (rotary tables, GPT-2's masks):
# state, not parameters; today's transformers recomputes them and ignores these names.
_LEFTOVERS = re.compile(r"(?:^|\.)(?:inv_freq|masked_bias|attn\.bias)$")


@dataclass(frozen=True)
class Plan:
    params: int  # the parameters the model will run with, each shared tensor once
    elements: int  # params plus every buffer: what loading allocates
    bytes: int  # elements in the storage dtype loading uses (float32 unless told)


def layer_count(config) -> int:
    text = config.get_text_config()
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(text, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def check(config, tensors: Tensors, max_elements: int, element_size: int = 4) -> Plan:
    """Refuse weights that do not fit config's model, or a model larger than max_elements."""
    layers = layer_count(config)
    held = {int(m.group(1)) for name in tensors for m in [_LAYER_INDEX.search(name)] if m}
    # Checked before the skeleton is built: a million layers would take minutes even on meta.
    # More layers in the weights than in the config is left to the name check below.
    if (held and layers > len(held)) or layers > len(tensors):
        raise CheckpointError(
            f"config.json asks for {layers} layers; the weights hold {len(held)}: "
            "fix num_hidden_layers or publish every layer's weights"
        )
    model = on_meta(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    tensors = _with_prefix(tensors, expected, model.base_model_prefix)
    tied = bool(getattr(config.get_text_config(), "tie_word_embeddings", False))
    optional = set(getattr(model, "all_tied_weights_keys", None) or {}) if tied else set()
    ignored = [re.compile(p) for p in getattr(model, "_keys_to_ignore_on_load_unexpected", ())]
    kind = config.model_type
    for name, shape in expected.items():
        if name not in tensors and name not in optional:
            raise CheckpointError(
                f"the weights lack {name}, which a {kind} model with this config.json needs: "
                "nothing is random-initialised here, so publish every weight"
            )
        stored = tensors.get(name, (None, shape))[1]
        if stored != shape:
            raise CheckpointError(
                f"{name} has shape {list(stored)} in the weights but config.json makes it "
                f"{list(shape)}: the config does not describe these weights"
            )
    for name in tensors:
        if name in expected or _LEFTOVERS.search(name) or any(p.search(name) for p in ignored):
            continue
        raise CheckpointError(
            f"the weights hold {name[:200]}, which a {kind} model with this config.json has "
            "no place for: remove it or fix the config"
        )
    params = sum(p.numel() for p in model.parameters())  # parameters() counts a tie once
    buffers = sum(b.numel() for b in model.buffers())
    plan = Plan(params, params + buffers, (params + buffers) * element_size)
    if plan.elements > max_elements:
        raise CheckpointError(
            f"the model needs {plan.elements:,} parameters and buffers "
            f"({human_bytes(plan.bytes)} to load), over this site's limit of {max_elements:,}"
        )
    return plan


def on_meta(config):
    """The model config.json describes, on the meta device: shapes only, nothing allocated."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except Exception as exc:  # a value the model cannot be built from: say which
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise CheckpointError(f"config.json does not build a model ({why})") from None


def _with_prefix(tensors: Tensors, expected: dict, prefix: str) -> Tensors:
    """Weights saved from the bare base model (GPT-2's own files: h.0... for transformer.h.0...)
    named as the causal LM names them, the one renaming transformers itself does."""
    dotted = f"{prefix}."
    if not prefix or any(name.startswith(dotted) for name in tensors):
        return tensors
    if not any(name.startswith(dotted) for name in expected):
        return tensors
    return {(n if n in expected else dotted + n): v for n, v in tensors.items()}
