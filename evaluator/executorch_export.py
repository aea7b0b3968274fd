"""Export a model directory to an ExecuTorch program (XNNPACK) for the latency probe.

The probe's untimed preparation step, run in its own subprocess so that neither its time nor
its memory (torch.export and lowering hold several copies of the weights) counts in the
probe's figures; evaluator.latency starts it, nothing else should.

    python -m evaluator.executorch_export MODEL_DIR --out DIR --max-cache-len N \
        --prompt-tokens P --decode-depth D --dtype float32 --threads T

The model is the one the eager probe measures, built by `evaluator.modeling` (so layer
sharing applies: the executed layers reference the stored blocks' parameters, and
torch.export lifts each parameter once, so the program stores shared weights once). It is
wrapped with transformers' static-cache export recipe, returning the last position's logits
only (as the eager probe's prefill does), exported with a dynamic sequence length (one
program for prefill and single-token decode, as ExecuTorch's Llama runner uses it), lowered
to XNNPACK and written as DIR/model.pte. The KV-cache buffers keep their (zero) initial
state in the program, so a fresh load starts from an empty cache.

DIR/reference.pt holds the prompt the probe's first forward runs and eager PyTorch's logits
for it, which the probe compares with ExecuTorch's; DIR/export.json says how it went.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Mutable buffers whose initial state is serialised: the static cache's keys, values and
# per-layer fill counters (TorchExportableModuleWithStaticCache's buffer names).
CACHE_BUFFERS = ["key_cache_", "value_cache_", "cumulative_length_"]


def export(
    model_dir: Path,
    out_dir: Path,
    max_cache_len: int,
    prompt_tokens: int,
    decode_depth: int,
    dtype: str,
    precision: str = "fp32",
) -> dict:
    import torch
    from transformers.integrations.executorch import TorchExportableModuleWithStaticCache

    from evaluator import quant
    from evaluator.modeling import build_model, read_weights
    from evaluator.probe_worker import _bytes_per_token

    class LastLogits(TorchExportableModuleWithStaticCache):
        """The static-cache recipe, returning only the last position's logits."""

        def forward(self, input_ids, cache_position):
            for layer in self.static_cache.layers:
                layer.cumulative_length.copy_(cache_position[0])
            out = self.model(
                input_ids=input_ids,
                attention_mask=None,
                cache=self.static_cache,
                use_cache=True,
                logits_to_keep=1,
            )
            return out.logits

    from executorch import version as et_version
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes.init_mutable_pass import InitializedMutableBufferPass
    from executorch.kernels import quantized as _quantized_kernels  # noqa: F401  (int8 embeddings)

    torch.manual_seed(0)
    config = json.loads((model_dir / "config.json").read_text())
    model = build_model(config, read_weights(model_dir), dtype)
    # The recipe the evaluation scored; bf16 in float16, XNNPACK's half precision (the
    # scheme, kept in export.json and the probe's environment, says so).
    quantized = quant.apply(model, precision, no_bf16=quant.EXECUTORCH_NO_BF16)
    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (1, prompt_tokens))

    # The eager reference: the same first forward (prompt from position 0, fresh cache).
    with torch.inference_mode():
        from transformers import DynamicCache

        reference = model(
            prompt, cache=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1
        ).logits.float()

    model.generation_config.cache_implementation = "static"
    model.generation_config.use_cache = True
    wrapped = LastLogits(model, batch_size=1, max_cache_len=max_cache_len).eval()
    start = time.perf_counter()
    seq = torch.export.Dim("seq", min=1, max=max_cache_len)
    example = (prompt[:, :2], torch.arange(2))
    with torch.no_grad():
        ep = torch.export.export(
            wrapped,
            args=example,
            dynamic_shapes=({1: seq}, {0: seq}),
            strict=True,  # non-strict export fails in to_edge's decompositions (torch 2.13)
        )
    export_s = time.perf_counter() - start

    start = time.perf_counter()
    program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch(
        ExecutorchBackendConfig(
            passes=[InitializedMutableBufferPass(CACHE_BUFFERS)],
            # Fuses torchao's dequantize → embedding into the quantized kernels' ops, as
            # ExecuTorch's LLM export does; without it a quantized embedding has no kernel.
            do_quant_fusion_and_const_prop=precision in ("int8", "int4"),
        )
    )
    lower_s = time.perf_counter() - start

    out_dir.mkdir(parents=True, exist_ok=True)
    pte = out_dir / "model.pte"
    pte.write_bytes(program.buffer)
    torch.save({"prompt": prompt, "logits": reference}, out_dir / "reference.pt")
    info = {
        "executorch": et_version.__version__,
        "export_s": export_s,
        "lower_s": lower_s,
        "max_cache_len": max_cache_len,
        "prompt_tokens": prompt_tokens,
        "dtype": dtype,
        "precision": quantized.as_dict(),
        # What one decode step reads, counted on the eager model exactly as the eager probe
        # counts it (the probe child never builds the eager model).
        "bytes_per_token": _bytes_per_token(model, decode_depth),
        "pte_bytes": pte.stat().st_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers_executed": model.config.num_hidden_layers,
    }
    (out_dir / "export.json").write_text(json.dumps(info))
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evaluator.executorch_export")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-cache-len", type=int, required=True)
    parser.add_argument("--prompt-tokens", type=int, required=True)
    parser.add_argument("--decode-depth", type=int, required=True)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    try:
        export(
            args.model_dir,
            args.out,
            args.max_cache_len,
            args.prompt_tokens,
            args.decode_depth,
            args.dtype,
            args.precision,
        )
    except ImportError as exc:
        sys.exit(f"probe error: {exc} (the executorch runtime needs `make install-executorch`)")
    except (OSError, ValueError, KeyError) as exc:
        sys.exit(f"probe error: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
