"""The quantization ladder: one checkpoint at fp32 (the reference), bf16, int8 and int4.

Applied to a loaded model in place, after loading and before lm-eval scores it, so every
precision runs through the same engine, tasks and data. The recipes:

- `fp32`: the checkpoint as loaded, in float32 (the reference every variant is compared to).
- `bf16`: weights and compute in bfloat16; fp16 on a CUDA device without bfloat16 (the
  scheme says which ran).
- `int8`: int8 weight-only, one scale per output channel, on every linear layer (the output
  layer included) and the embeddings; activations stay float32.
- `int4`: ExecuTorch's 8da4w: int8 dynamic per-token activations with int4 weights in
  groups of 32 on every linear layer but the output layer, which gets int8 weights per
  channel (8da8w), and int8 per-channel embeddings; all through torchao.

A recipe that cannot quantize a layer refuses the variant with the reason (QuantRefused);
it never leaves a layer in full precision silently: after quantizing, every weight matrix
must be a quantized tensor, and `weights_bytes` is measured from the tensors themselves.
GPT-2's Conv1D layers (x @ W + b, weight stored [in, out]) are converted to nn.Linear with
the transposed weight first, which computes the same function.

The precision is a free-form string elsewhere (a GGUF type such as "Q4_1" may name one);
only the names in RECIPES can be applied here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

REFERENCE = "fp32"
GROUP_SIZE = 32  # ExecuTorch's 8da4w default
SCHEMES = {
    "fp32": "float32 weights and compute (reference)",
    "bf16": "bfloat16 weights and compute",
    "int8": "int8 weight-only, per output channel (linear layers incl. output, embeddings); "
    "float32 activations (torchao Int8WeightOnlyConfig, IntxWeightOnlyConfig)",
    "int4": f"ExecuTorch 8da4w: int8 dynamic per-token activations, int4 weights in groups of "
    f"{GROUP_SIZE} on linear layers; output layer 8da8w per channel; int8 per-channel "
    "embeddings (torchao Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig)",
}
RECIPES = tuple(SCHEMES)


class QuantRefused(ValueError):
    """This variant cannot be made faithfully for this model; the message says why."""


# What XNNPACK runs of each recipe once lowered. int8 weight-only has no XNNPACK kernel
# (it takes int8 weights only with int8 dynamic activations), so the lowered program would
# carry the weights dequantized to float32: measured in eager only.
# Measured on a 3-layer model of the 125M width (bench/README.md): a bfloat16 program runs
# on ExecuTorch's portable kernels, 26x slower than fp32, while float16 is delegated to XNNPACK.
EXECUTORCH_NO_BF16 = "XNNPACK has no bfloat16 kernels"
EXECUTORCH_REFUSES = {
    "int8": "XNNPACK has no int8 weight-only linear: the lowered program would run the "
    "weights dequantized to float32, so this variant is measured in eager PyTorch only",
}


@dataclass(frozen=True)
class Quantized:
    precision: str
    scheme: str
    # Bytes of every parameter and buffer as the model holds them while it runs (torchao
    # keeps int4 values unpacked in int8 tensors), and as an exporter packs them (two int4
    # values per byte); equal for the other recipes.
    weights_bytes: int
    weights_bytes_packed: int
    quantized_layers: int

    def as_dict(self) -> dict:
        return asdict(self)


def parse_precisions(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """ "fp32,int4" → ["fp32", "int4"]: the reference first, always, then the others in
    ladder order; ValueError names an unknown one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    wanted = {p.strip().lower() for p in items if p.strip()}
    unknown = sorted(wanted - set(RECIPES))
    if unknown:
        raise ValueError(f"unknown precision {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    return [p for p in RECIPES if p == REFERENCE or p in wanted]


def apply(model, precision: str, no_bf16: str = "") -> Quantized:
    """Quantize model in place to precision; QuantRefused says why it cannot be done.

    no_bf16: why the runtime cannot run bfloat16, if it cannot: then the bf16 rung runs in
    float16, as on a CUDA device without bfloat16, and its scheme says so."""
    if precision not in RECIPES:
        raise QuantRefused(f"no recipe for precision {precision!r}; known: {', '.join(RECIPES)}")
    import torch

    scheme = SCHEMES[precision]
    count = 0
    loaded = next(model.parameters()).dtype
    if precision == REFERENCE and loaded != torch.float32:
        # A site may load its references in another dtype (EVAL_DTYPE): say what ran.
        scheme = f"{str(loaded).removeprefix('torch.')} as loaded (EVAL_DTYPE; the reference)"
    if precision == "bf16":
        dtype = torch.float16 if no_bf16 else _half_dtype(model)
        model.to(dtype)
        if dtype != torch.bfloat16:
            why = no_bf16 or "this device has no bfloat16"
            scheme = f"float16 weights and compute ({why})"
    elif precision in ("int8", "int4"):
        count = _quantize(model, precision)
    stored, packed = weights_bytes(model)
    return Quantized(precision, scheme, stored, packed, count)


def _half_dtype(model):
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _torchao():
    try:
        import torchao.quantization as tq
        from torchao.quantization.granularity import PerAxis, PerGroup
    except ImportError as exc:  # requirements.txt pins it; a trimmed install may lack it
        raise QuantRefused(
            f"torchao is not installed on this worker ({exc}); pip install torchao==0.18.0"
        ) from None
    return tq, PerAxis, PerGroup


def _quantize(model, precision: str) -> int:
    import torch
    from torch import nn

    tq, PerAxis, PerGroup = _torchao()
    if next(model.parameters()).dtype != torch.float32:
        raise QuantRefused("int8/int4 recipes start from a float32 model")
    _conv1d_to_linear(model)
    output = _output_layer(model)
    linears = {fqn: m for fqn, m in model.named_modules() if isinstance(m, nn.Linear)}
    if precision == "int4":
        odd = [f"{fqn} ({m.in_features})" for fqn, m in linears.items()
               if m is not output and m.in_features % GROUP_SIZE]  # fmt: skip
        if odd:
            raise QuantRefused(
                f"int4 groups of {GROUP_SIZE} need input widths divisible by {GROUP_SIZE}: "
                + ", ".join(odd[:5])
                + (f" and {len(odd) - 5} more" if len(odd) > 5 else "")
            )
        inner = tq.Int8DynamicActivationIntxWeightConfig(
            weight_dtype=torch.int4, weight_granularity=PerGroup(GROUP_SIZE)
        )
        head = tq.Int8DynamicActivationIntxWeightConfig(
            weight_dtype=torch.int8, weight_granularity=PerAxis(0)
        )
        tq.quantize_(
            model, inner, filter_fn=lambda m, _: isinstance(m, nn.Linear) and m is not output
        )
        if output is not None:
            tq.quantize_(model, head, filter_fn=lambda m, _: m is output)
    else:
        linear = tq.Int8WeightOnlyConfig()  # per row: one scale per output channel
        tq.quantize_(model, linear, filter_fn=lambda m, _: isinstance(m, nn.Linear))
    embeddings = tq.IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))
    tq.quantize_(model, embeddings, filter_fn=lambda m, fqn: isinstance(m, nn.Embedding))
    left = [fqn for fqn, p in model.named_parameters()
            if p.dim() >= 2 and not is_quantized(p)]  # fmt: skip
    if left:
        raise QuantRefused(
            f"the {precision} recipe left weight matrices in full precision: "
            + ", ".join(left[:5])
            + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        )
    return sum(1 for p in model.parameters() if is_quantized(p))


def _output_layer(model):
    get = getattr(model, "get_output_embeddings", None)
    return get() if get is not None else None


def _conv1d_to_linear(model) -> None:
    """Replace transformers' Conv1D (weight [in, out]) by nn.Linear (weight [out, in]) with
    the transposed weight and the same bias: the same function, in a layer torchao knows."""
    from torch import nn

    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # a transformers without Conv1D has no such layers either
        return
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, Conv1D):
                continue
            n_in, n_out = child.weight.shape
            linear = nn.Linear(n_in, n_out, bias=child.bias is not None)
            linear.to(device=child.weight.device, dtype=child.weight.dtype)
            linear.weight.data.copy_(child.weight.data.t())
            if child.bias is not None:
                linear.bias.data.copy_(child.bias.data)
            setattr(parent, name, linear)


def is_quantized(tensor) -> bool:
    return hasattr(tensor, "__tensor_flatten__") and "qdata" in tensor.__tensor_flatten__()[0]


def _parts(tensor) -> list[tuple[str, object, object]]:
    """The plain tensors a (possibly subclassed) tensor is stored as: (name, tensor, owner)."""
    if not hasattr(tensor, "__tensor_flatten__"):
        return [("", tensor, None)]
    names, _ = tensor.__tensor_flatten__()
    out = []
    for name in names:
        for inner_name, inner, owner in _parts(getattr(tensor, name)):
            out.append((inner_name or name, inner, owner or tensor))
    return out


def weights_bytes(model) -> tuple[int, int]:
    """(as stored while running, as packed for export) over every parameter, each storage
    counted once (a tied output layer shares its embedding's). Buffers (rotary tables,
    masks) are derived from the config, not weights: left out."""
    seen: set[int] = set()
    stored = packed = 0
    for tensor in model.parameters():
        for name, part, owner in _parts(tensor):
            key = part.untyped_storage().data_ptr() if part.numel() else id(part)
            if key in seen:
                continue
            seen.add(key)
            size = part.numel() * part.element_size()
            stored += size
            bits = _target_bits(owner) if name == "qdata" else None
            packed += (part.numel() * bits + 7) // 8 if bits else size
    return stored, packed


def _target_bits(owner) -> int | None:
    """Bits per value an exporter stores for a quantized tensor's qdata (int4 → 4)."""
    import torch

    target = getattr(owner, "target_dtype", None)
    widths = {torch.int4: 4, torch.int8: 8, torch.uint4: 4}
    return widths.get(target)
