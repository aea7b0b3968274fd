"""The latency probe's child process; evaluator.latency starts it, nothing else should.

    python -m evaluator.probe_worker probe MODEL_DIR --settings JSON --threads N --out FILE
    python -m evaluator.probe_worker probe MODEL_DIR --settings JSON --prepared DIR ...
    python -m evaluator.probe_worker bandwidth [--size-mb M] --threads N --out FILE

The result goes to FILE as JSON, so stray prints from libraries cannot corrupt it. Known
problems (missing or corrupt files, bad configs) end with one `probe error:` line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

from evaluator import latency_stats  # standard library only, like machine
from evaluator.machine import cpu_model  # standard library only: safe before torch loads


def _set_threads(threads: int):
    # Before anything else touches torch: the interop pool can only be sized before first use.
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    return torch


def _ms_since(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


def _timed_rounds(prefill, decode_round, settings: dict) -> tuple[list[float], list[float]]:
    """The timing loop both runtimes share: warm-up, then `repeats` timed prefills and at
    least `repeats` decode rounds of `decode_tokens` steps each (decode_round times its
    steps), more until the median is stable or the budget ends (evaluator.latency_stats)."""
    for _ in range(settings["warmup"]):
        prefill()
        decode_round(min(4, settings["decode_tokens"]))
    prefill_samples = []
    for _ in range(settings["repeats"]):
        start = time.perf_counter_ns()
        prefill()
        prefill_samples.append(_ms_since(start))
    decode_samples: list[float] = []
    within, budget_s = settings.get("stable_within", 0.0), settings.get("budget_s", 0.0)
    deadline = time.monotonic() + budget_s
    rounds = 0
    while rounds < settings["repeats"] or (
        time.monotonic() < deadline and not latency_stats.is_stable(decode_samples, within)
    ):
        decode_samples += decode_round(settings["decode_tokens"])
        rounds += 1
    return prefill_samples, decode_samples


def run_probe(model_dir: Path, settings: dict, threads: int) -> dict:
    torch = _set_threads(threads)
    from transformers import DynamicCache
    from transformers.utils import logging as hf_logging

    from evaluator.modeling import build_model, causal_lm_config, read_weights, weight_files

    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    files = weight_files(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    # Importing the model's transformers modules takes seconds the first time; that is
    # Python start-up, not model initialisation, so it happens before the clocks start.
    causal_lm_config(config)

    start = time.perf_counter_ns()
    state_dict = read_weights(model_dir)
    load_ms = _ms_since(start)

    from evaluator import quant

    start = time.perf_counter_ns()
    model = build_model(config, state_dict, settings["dtype"])
    # A ladder rung is quantized as part of building the runnable model.
    quantized = quant.apply(model, settings.get("precision", quant.REFERENCE))
    init_ms = _ms_since(start)
    del state_dict  # the model holds the tensors it needs

    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (1, settings["prompt_tokens"]))
    context = torch.randint(0, vocab, (1, settings["decode_depth"]))

    def prefill(ids):
        # A fresh cache per call, as a real prompt would have; only the last logits are
        # needed to pick the next token, as in generate().
        return model(ids, cache=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1)

    def decode_round(steps: int) -> list[float]:
        cache = DynamicCache(config=model.config)
        logits = model(context, cache=cache, use_cache=True, logits_to_keep=1).logits
        times = []
        for _ in range(steps):
            next_id = logits[:, -1:].argmax(-1)  # greedy choice, outside the timed region
            start = time.perf_counter_ns()
            logits = model(next_id, cache=cache, use_cache=True).logits
            times.append(_ms_since(start))
        return times

    with torch.inference_mode():
        start = time.perf_counter_ns()
        prefill(prompt)
        first_forward_ms = _ms_since(start)
        prefill_samples, decode_samples = _timed_rounds(
            lambda: prefill(prompt), decode_round, settings
        )

    return _summary(
        load_ms,
        init_ms,
        first_forward_ms,
        prefill_samples,
        decode_samples,
        # A variant's file is its weights packed as exported, not the fp32 checkpoint's.
        file_size_mb=(
            sum(f.stat().st_size for f in files)
            if quantized.precision == quant.REFERENCE
            else quantized.weights_bytes_packed
        )
        / 2**20,
        bytes_per_token=_bytes_per_token(model, settings["decode_depth"]),
        environment={**_environment(torch, settings), "precision": quantized.as_dict()},
    )


# ExecuTorch's first-forward logits must match eager PyTorch's this closely (max abs diff);
# a quantized variant's XNNPACK kernels round activations their own way, and half precision
# (a bf16 variant, or a float16/bfloat16 profile) sums in another order: tolerance looser,
# still far below what a wrong graph gives.
LOGITS_TOLERANCE = 1e-4
QUANTIZED_LOGITS_TOLERANCE = {"bf16": 0.05, "int4": 0.05}
HALF_DTYPES = ("float16", "bfloat16")


def logits_tolerance(settings: dict) -> float:
    if settings.get("precision") in QUANTIZED_LOGITS_TOLERANCE:
        return QUANTIZED_LOGITS_TOLERANCE[settings["precision"]]
    return 0.05 if settings.get("dtype") in HALF_DTYPES else LOGITS_TOLERANCE


def run_executorch_probe(model_dir: Path, prepared: Path, settings: dict, threads: int) -> dict:
    """The probe on an ExecuTorch program made by evaluator.executorch_export.

    load = read model.pte into memory; init = load_program + load_method (XNNPACK packs
    its weights there); then the same first forward, prefill and decode rounds as eager.
    One program with a dynamic sequence length serves prefill (one call over the prompt)
    and decode (one token per call); its static KV cache lives inside the program and each
    call's cache_position says where the tokens go.
    """
    torch = _set_threads(threads)
    from executorch.extension.pybindings import portable_lib

    # XNNPACK runs on ExecuTorch's own thread pool (sized to the cores by default).
    portable_lib._unsafe_reset_threadpool(threads)
    from executorch.kernels import quantized  # noqa: F401  (registers embedding_byte & co.)
    from executorch.runtime import Runtime

    runtime = Runtime.get()  # loads the runtime library: start-up, not model init
    export_info = json.loads((prepared / "export.json").read_text())
    reference = torch.load(prepared / "reference.pt")
    pte = prepared / "model.pte"

    start = time.perf_counter_ns()
    data = pte.read_bytes()
    load_ms = _ms_since(start)

    start = time.perf_counter_ns()
    program = runtime.load_program(data)
    method = program.load_method("forward")
    init_ms = _ms_since(start)

    def run(ids, position: int):
        positions = torch.arange(position, position + ids.shape[1])
        return method.execute([ids, positions])[0]

    torch.manual_seed(0)
    prompt = reference["prompt"]
    vocab = reference["logits"].shape[-1]
    context = torch.randint(0, vocab, (1, settings["decode_depth"]))

    def decode_round(steps: int) -> list[float]:
        # Filling the cache to the decode depth is one untimed prefill call from position 0.
        logits = run(context, 0)
        times = []
        for i in range(steps):
            next_id = logits[:, -1:].argmax(-1)  # greedy choice, outside the timed region
            position = torch.tensor([settings["decode_depth"] + i])
            start = time.perf_counter_ns()
            logits = method.execute([next_id, position])[0]
            times.append(_ms_since(start))
        return times

    start = time.perf_counter_ns()
    first = run(prompt, 0)
    first_forward_ms = _ms_since(start)
    diff = (first.float() - reference["logits"]).abs().max().item()
    tolerance = logits_tolerance(settings)
    if not diff <= tolerance:  # also catches NaN
        raise ValueError(
            f"ExecuTorch logits differ from eager PyTorch's on the first forward: max abs "
            f"difference {diff:.3g} > {tolerance:g}"
        )
    prefill_samples, decode_samples = _timed_rounds(lambda: run(prompt, 0), decode_round, settings)

    import executorch.version

    environment = _environment(torch, settings)
    environment.update(
        runtime=f"executorch {executorch.version.__version__} (XNNPACK)",
        xnnpack_threads=portable_lib._threadpool_get_thread_count(),
        prefill="one call over the prompt (dynamic sequence length)",
        logits_max_abs_diff=diff,
        logits_tolerance=tolerance,
        export=export_info,
    )
    return _summary(
        load_ms,
        init_ms,
        first_forward_ms,
        prefill_samples,
        decode_samples,
        file_size_mb=pte.stat().st_size / 2**20,
        bytes_per_token=export_info["bytes_per_token"],
        environment=environment,
    )


def _summary(
    load_ms,
    init_ms,
    first_forward_ms,
    prefill_samples,
    decode_samples,
    *,
    file_size_mb,
    bytes_per_token,
    environment,
) -> dict:
    """The result both runtimes report: medians, p90, rate, and the raw samples."""
    decode_p50 = statistics.median(decode_samples)
    return {
        "load_ms": load_ms,
        "init_ms": init_ms,
        "first_forward_ms": first_forward_ms,
        "prefill_ms": statistics.median(prefill_samples),
        "decode_ms_p50": decode_p50,
        **latency_stats.spread(decode_samples, environment["settings"].get("stable_within", 0)),
        "decode_tok_s": 1000 / decode_p50,
        "peak_rss_mb": _peak_rss_mb(),
        "file_size_mb": file_size_mb,
        "bytes_per_token": bytes_per_token,
        "samples": {
            "load_ms": [load_ms],
            "init_ms": [init_ms],
            "first_forward_ms": [first_forward_ms],
            "prefill_ms": prefill_samples,
            "decode_ms": decode_samples,
        },
        "environment": environment,
    }


def _bytes_per_token(model, depth: int) -> int:
    """Weights plus KV cache one decode step reads from memory, at `depth` cached tokens.

    Shared blocks count once (parameters() yields each tensor once): re-running a block
    reads the same weights, which is the point of MobileLLM-LS. An untied input embedding
    counts one row, as a step looks up a single token.
    """
    from evaluator import quant

    weights = quant.weights_bytes(model)[0]  # a quantized tensor's element_size is its dtype's
    embed = model.get_input_embeddings().weight
    if embed is not model.get_output_embeddings().weight:
        row = 1 if quant.is_quantized(embed) else embed.element_size()
        weights -= (embed.shape[0] - 1) * embed.shape[1] * row
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    kv = cfg.num_hidden_layers * 2 * kv_heads * head_dim * depth * embed.element_size()
    return int(weights + kv)


def _peak_rss_mb() -> float:
    """This process's peak resident memory.

    On Linux, ru_maxrss is carried across fork + exec, so a child of a big parent (pytest
    with torch loaded, a Celery worker holding a model) reports the parent's RSS as its own
    peak; VmHWM is the high-water mark of this process's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _environment(torch, settings: dict) -> dict:
    import transformers

    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "runtime": settings["runtime"],
        "dtype": settings["dtype"],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "settings": settings,
    }


def _llc_mb() -> int:
    """Size of the largest CPU cache in MiB (0 if unknown)."""
    sizes = [0]
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip()
        scale = {"K": 1 / 1024, "M": 1, "G": 1024}.get(text[-1:], 1 / 2**20)
        sizes.append(int(float(text.rstrip("KMG")) * scale))
    return max(sizes)


def run_bandwidth(size_mb: int | None, threads: int, rounds: int = 8) -> dict:
    torch = _set_threads(threads)
    # Twice the last-level cache, so the figure is memory's, not the cache's.
    size_mb = size_mb or min(max(256, 2 * _llc_mb()), 2048)
    n = size_mb * 2**20 // 4
    src = torch.ones(n)
    dst = torch.empty_like(src)
    matrix = src.view(-1, 4096)
    vector = torch.ones(4096)
    # (kernel, bytes it moves): reads, plus the writes for copy.
    kernels = [
        (src.sum, src.nbytes),
        (lambda: dst.copy_(src), 2 * src.nbytes),
        (lambda: matrix @ vector, src.nbytes),
    ]
    best = 0.0
    for kernel, nbytes in kernels:
        kernel()  # first touch: page faults are not bandwidth
        for _ in range(rounds):
            start = time.perf_counter_ns()
            kernel()
            best = max(best, nbytes / (time.perf_counter_ns() - start))  # bytes/ns == GB/s
    return {"bandwidth_gb_s": best, "threads": torch.get_num_threads(), "size_mb": size_mb}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evaluator.probe_worker")
    parser.add_argument("mode", choices=("probe", "bandwidth"))
    parser.add_argument("model_dir", nargs="?", type=Path)
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--size-mb", type=int, default=None)
    parser.add_argument("--prepared", type=Path, help="the exported program (executorch)")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.mode == "bandwidth":
            result = run_bandwidth(args.size_mb, args.threads)
        elif args.prepared is not None:
            settings = json.loads(args.settings)
            result = run_executorch_probe(args.model_dir, args.prepared, settings, args.threads)
        else:
            result = run_probe(args.model_dir, json.loads(args.settings), args.threads)
    except (OSError, ValueError, KeyError) as exc:
        # safetensors raises its own error type for corrupt files; it subclasses Exception only.
        sys.exit(f"probe error: {type(exc).__name__}: {exc}")
    except Exception as exc:
        if type(exc).__name__ == "SafetensorError":
            sys.exit(f"probe error: corrupt weights file: {exc}")
        raise
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
