"""Load a verified local checkpoint directory into a runnable causal LM.

The one place that turns a model directory into a torch module, shared by the harness and
the latency probe. Safetensors only, never remote code.

Layer sharing (MobileLLM-LS): a config may declare
``"layer_sharing": {"scheme": "immediate_block_wise", "repeats": R}``. The checkpoint then
stores N blocks (its config says ``num_hidden_layers: N``) and the model runs each block R
times in a row (0, 0, 1, 1, ...), N * R layers deep. The executed layers share the stored
blocks' parameters but keep their own layer index, so each gets its own KV-cache slot.
Because the expansion mutates the config, a shared model must not be saved back with
``save_pretrained``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.safehttp import CheckpointError, Limits

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}

SHARING_SCHEMES = ("immediate_block_wise",)
# Architectures whose decoder layers we know how to rebuild around shared blocks: the layer
# is `Cls(config, layer_idx)` and only its attention module holds the layer index.
SHARING_MODEL_TYPES = ("llama",)
MAX_REPEATS = 16


def pick_device(requested: str | None = None) -> str:
    import torch

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(dtype: str) -> torch.dtype:
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    return getattr(torch, DTYPES[dtype])


def sharing_repeats(config: PretrainedConfig | dict[str, Any]) -> int:
    """How many times each stored block runs (1 without sharing); ValueError if malformed."""
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    spec = get("layer_sharing")
    if spec is None:
        return 1
    if not isinstance(spec, dict):
        raise ValueError(f"layer_sharing must be an object, not {spec!r}")
    scheme = spec.get("scheme")
    if scheme not in SHARING_SCHEMES:
        raise ValueError(
            f"unknown layer_sharing scheme {scheme!r}; supported: {', '.join(SHARING_SCHEMES)}"
        )
    repeats = spec.get("repeats")
    # bool is an int subclass; `true` is not a repeat count.
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise ValueError(
            f"layer_sharing repeats must be an integer from 1 to {MAX_REPEATS}, not {repeats!r}"
        )
    model_type = get("model_type")
    if repeats > 1 and model_type not in SHARING_MODEL_TYPES:
        raise ValueError(
            f"layer_sharing is supported for {', '.join(SHARING_MODEL_TYPES)} models, "
            f"not {model_type!r}"
        )
    return repeats


def apply_layer_sharing(model: PreTrainedModel) -> PreTrainedModel:
    """Expand a model holding the N stored blocks into the N * repeats executed layers."""
    import torch
    from torch import nn

    config = model.config
    repeats = sharing_repeats(config)
    if repeats == 1:
        return model
    if getattr(config, "is_heterogeneous", False):
        raise ValueError("layer_sharing is not supported with per-layer configs")
    if getattr(model, "_layers_shared", False):
        raise ValueError("layer sharing was already applied to this model")
    decoder = model.get_decoder()
    stored = list(decoder.layers)
    config.num_hidden_layers = len(stored) * repeats
    # The KV cache and masks size themselves from these, so they must describe executed layers.
    if getattr(config, "layer_types", None):
        config.layer_types = [kind for kind in config.layer_types for _ in range(repeats)]
    layer_cls = type(stored[0])
    # Shells are built on the meta device: they allocate nothing, then adopt the stored
    # block's modules, so memory stays that of N blocks.
    with torch.device("meta"):
        shells = [layer_cls(config, i) for i in range(config.num_hidden_layers)]
    for i, shell in enumerate(shells):
        _adopt(shell, stored[i // repeats], i)
    decoder.layers = nn.ModuleList(shells)
    model._layers_shared = True
    return model.train(stored[0].training)


def _adopt(shell: torch.nn.Module, block: torch.nn.Module, layer_idx: int) -> None:
    """Give `shell` the block's submodules, keeping the shell's own layer-indexed attention."""
    for name, child in block.named_children():
        if hasattr(child, "layer_idx"):
            own = getattr(shell, name)
            for sub_name, sub in child.named_children():
                setattr(own, sub_name, sub)
            for p_name, param in child.named_parameters(recurse=False):
                own.register_parameter(p_name, param)
        else:
            setattr(shell, name, child)
    for p_name, param in block.named_parameters(recurse=False):
        shell.register_parameter(p_name, param)
    leftover = [n for n, t in [*shell.named_parameters(), *shell.named_buffers()] if t.is_meta]
    if leftover:
        raise ValueError(f"cannot share layer {layer_idx}: unshareable state {leftover}")


def causal_lm_config(config: dict[str, Any]) -> PretrainedConfig:
    """A transformers config from a config.json dict; known causal LMs only, no remote code."""
    from transformers import CONFIG_MAPPING

    if "auto_map" in config:
        raise ValueError("config declares auto_map (remote code), which is refused")
    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"unknown model_type {model_type!r}")
    cfg = CONFIG_MAPPING[model_type].from_dict(config)
    causal_lm_class(cfg)
    return cfg


def causal_lm_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    """The causal-LM class for a config; importing it is slow the first time (seconds)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise ValueError(f"model_type {config.model_type!r} is not a causal language model")
    return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]


def weight_files(model_dir: str | Path) -> list[Path]:
    """The checkpoint's safetensors files: one file, or the shards its index names."""
    model_dir = Path(model_dir)
    single = model_dir / "model.safetensors"
    if single.is_file():
        return [single]
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / name for name in shards]
    raise FileNotFoundError(f"no model.safetensors (or sharded index) in {model_dir}")


def read_weights(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Read every weight from disk into memory."""
    from safetensors.torch import load_file

    state_dict: dict[str, torch.Tensor] = {}
    for path in weight_files(model_dir):
        # pread copies the bytes now; the default mmap would defer the disk read to first use.
        state_dict.update(load_file(path, backend="pread"))
    return state_dict


def build_model(
    config: dict[str, Any], state_dict: dict[str, torch.Tensor], dtype: str = "float32"
) -> PreTrainedModel:
    """A runnable eval-mode model from a config.json dict and loaded weights (CPU)."""
    sharing_repeats(config)  # fail on a bad spec before building anything
    cfg = causal_lm_config(config)
    model_cls = causal_lm_class(cfg)
    # Same loader as load_model (from_pretrained), fed tensors instead of a path; it assigns
    # them without copying when the dtype already matches.
    model, info = model_cls.from_pretrained(
        None,
        config=cfg,
        state_dict=state_dict,
        dtype=torch_dtype(dtype),
        attn_implementation=attention_for(model_cls),
        output_loading_info=True,
    )
    _require_strict(info)
    return apply_layer_sharing(model).eval()


def attention_for(model_cls: type[PreTrainedModel]) -> str:
    """The attention implementation we run, never the checkpoint's choice (which can name a
    Hub kernel to fetch and import): PyTorch's SDPA where the class supports it."""
    return "sdpa" if getattr(model_cls, "_supports_sdpa", False) else "eager"


# Leftovers older transformers saved beside the weights: state, not parameters.
_LEFTOVERS = re.compile(r"(?:^|\.)(?:inv_freq|masked_bias|attn\.bias)$")


def _require_strict(info: dict) -> None:
    """Every weight loaded from the file, none left random, none of the wrong shape.

    evaluator.checkpoint has checked this on the meta device before; this is the same rule
    where the tensors are really assigned, for folders that did not come through fetch()."""
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(
        str(k[0]) if isinstance(k, tuple) else str(k) for k in info.get("mismatched_keys") or ()
    )
    unexpected = sorted(k for k in info.get("unexpected_keys") or () if not _LEFTOVERS.search(k))
    for keys, what in [(missing, "lack"), (mismatched, "have the wrong shape for"),
                       (unexpected, "hold tensors the model has no place for:")]:  # fmt: skip
        if keys:
            raise CheckpointError(f"the weights {what} {', '.join(keys[:3])[:300]}")


def check_first_forward(model: PreTrainedModel, tokenizer) -> None:
    """One forward pass on a short text: non-finite logits mean nothing this model scores can
    be trusted (lm-eval would rank NaN log-likelihoods all the same)."""
    import torch

    ids = tokenizer("The quick brown fox jumps over the lazy dog.")["input_ids"][:16] or [0]
    with torch.no_grad():
        logits = model(torch.tensor([ids], device=model.device)).logits
    if not torch.isfinite(logits).all():
        raise CheckpointError(
            "the model's first forward pass gives non-finite logits (NaN or Inf): "
            "it cannot be scored"
        )


def load_model(
    model_dir: str | Path,
    device: str | None = None,
    dtype: str = "float32",
    max_params: int = Limits.max_params,
):
    """Return (model, tokenizer) in eval mode on the device; loads strictly, with our own
    attention implementation, and raises CheckpointError if the first logits are not finite."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch_type = torch_dtype(dtype)
    device = pick_device(device)
    from evaluator.checkpoint import inspection, skeleton

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    sharing_repeats(config)
    # The weights matched to the config on the meta device first (fetch() did so too): a
    # folder from elsewhere must not make from_pretrained allocate what its config asks.
    skeleton.check(config, inspection.weight_headers(Path(model_dir)), max_elements=max_params)
    model, info = AutoModelForCausalLM.from_pretrained(
        model_dir,
        config=config,
        dtype=torch_type,
        use_safetensors=True,
        trust_remote_code=False,
        attn_implementation=attention_for(causal_lm_class(config)),
        output_loading_info=True,
    )
    _require_strict(info)
    model = apply_layer_sharing(model)
    model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    check_first_forward(model, tokenizer)
    return model, tokenizer
