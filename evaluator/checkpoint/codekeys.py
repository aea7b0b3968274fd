"""Config keys that make transformers import or fetch code: refused, whatever their depth.

We choose what runs: the model class from model_type, the attention implementation
(modeling.load_model passes it), no kernels and no quantization backends. A key that picks
one of those is a way for a checkpoint to run code here, so it is refused with its name.
"""

from __future__ import annotations

from evaluator.safehttp import CheckpointError

# Attention and experts implementations: a Hub kernel's repo id ("org/flash-attn") is fetched
# and imported. The stock ones are harmless and overridden anyway, so old configs still load.
_IMPLEMENTATION_KEYS = (
    "attn_implementation",
    "_attn_implementation",
    "_attn_implementation_internal",
    "experts_implementation",
    "_experts_implementation",
    "_experts_implementation_internal",
)
_STOCK = (None, "eager", "sdpa")
# Kernel hubs and module patching: each swaps our modules for code from elsewhere.
_KERNEL_KEYS = ("use_kernels", "kernel_config", "kernels_mode", "allow_all_kernels")
_KERNEL_KEYS += ("fusion_config",)


def refuse_code_keys(name: str, doc: dict) -> None:
    """Raise CheckpointError if doc (config.json or a sibling) names code to run."""
    for key, value in _walk(doc):
        if key == "quantization_config":
            method = value.get("quant_method") if isinstance(value, dict) else None
            raise CheckpointError(
                f"{name} has a quantization_config (quant_method {str(method)[:40]!r}): "
                "quantization backends import code of their own, so this site evaluates "
                "unquantized safetensors only"
            )
        if key in _IMPLEMENTATION_KEYS and value not in _STOCK:
            raise CheckpointError(
                f"{name} picks its own implementation ({key}: {str(value)[:80]!r}), which can "
                "fetch and run a kernel: remove the key; this site chooses the attention "
                "implementation itself"
            )
        if key in _KERNEL_KEYS and value not in (None, False, {}, []):
            raise CheckpointError(
                f"{name} asks for kernels ({key}), which fetch and run code: remove the key"
            )


def _walk(doc):
    """Every (key, value) pair at any depth, sub-configs (text_config ...) included."""
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                yield key, value
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
