"""The weights' values: a NaN or an infinity in any floating tensor is refused before the
model is scored (its logits would be NaN, and lm-eval would still rank its answers)."""

from __future__ import annotations

from pathlib import Path

from evaluator.safehttp import CheckpointError

_ROWS_AT_ONCE = 1 << 22  # elements read per slice: big tensors are checked a slice at a time


def check_finite(files: list[Path]) -> None:
    """Raise CheckpointError naming the first tensor that holds NaN or Inf."""
    import torch
    from safetensors import safe_open

    for path in files:
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                part = f.get_slice(name)
                shape = part.get_shape()
                if not shape:
                    chunks = [f.get_tensor(name)]
                else:
                    row = max(1, _numel(shape[1:]))
                    step = max(1, _ROWS_AT_ONCE // row)
                    chunks = (part[i : i + step] for i in range(0, shape[0], step))
                for chunk in chunks:
                    if chunk.is_floating_point() and not torch.isfinite(chunk.float()).all():
                        raise CheckpointError(
                            f"{name[:200]} holds NaN or infinite values: "
                            "a model with them cannot be scored"
                        )


def _numel(shape) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n
