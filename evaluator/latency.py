"""Latency probe (DESIGN §5): load, init, first forward, prefill and decode timings.

Every measurement runs in a fresh child process (`python -m evaluator.probe_worker`) so the
thread count is fixed before torch is imported, nothing from the caller's process (warm
caches, other models, a Celery worker's threads) leaks into the figures, and peak RSS is the
probe's own. This module only starts the child and reads its JSON back.

    python -m evaluator.latency MODEL_DIR [--threads N] [--bandwidth] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evaluator import quant
from evaluator.modeling import weight_files

# "eager": the transformers model in PyTorch. "executorch": the same model exported to an
# ExecuTorch program lowered to XNNPACK (needs `make install-executorch`), as in the paper.
RUNTIMES = ("eager", "executorch")
DTYPES = ("float32", "bfloat16", "float16")
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
TICK_S = 2.0


class ProbeError(RuntimeError):
    """The probe child failed or timed out; the message carries its stderr tail."""


@dataclass(frozen=True)
class ProbeSettings:
    threads: int = 1
    dtype: str = "float32"
    runtime: str = "eager"
    prompt_tokens: int = 128
    decode_depth: int = 128
    decode_tokens: int = 32
    warmup: int = 2
    repeats: int = 5
    timeout_s: float = 600
    # The untimed export and lowering to an ExecuTorch program has its own budget: lowering
    # is single-threaded and slow (the 125M shape here: 5 to 9 min in fp32, 12 to 20 in int4,
    # where XNNPACK gets one partition per quantized linear; bench/README.md).
    export_timeout_s: float = 3600
    # Decode rounds go on past `repeats` until the median's 95 % CI half-width is within
    # this fraction of it, or budget_s seconds of decoding have passed (then: unstable).
    stable_within: float = 0.05
    budget_s: float = 20.0
    # A rung of the quantization ladder (evaluator.quant), applied as part of init.
    precision: str = quant.REFERENCE

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {self.runtime!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, not {self.dtype!r}")
        if self.precision not in quant.RECIPES:
            raise ValueError(f"precision must be one of {quant.RECIPES}, not {self.precision!r}")
        counts = ("threads", "prompt_tokens", "decode_depth", "decode_tokens", "repeats")
        for name in counts:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError("warmup must be a non-negative integer")
        if not self.timeout_s > 0 or not self.export_timeout_s > 0:
            raise ValueError("timeout_s and export_timeout_s must be positive")
        if not self.stable_within >= 0 or not self.budget_s >= 0:
            raise ValueError("stable_within and budget_s must not be negative")


@dataclass
class ProbeResult:
    load_ms: float
    init_ms: float
    first_forward_ms: float
    prefill_ms: float
    decode_ms_p50: float
    decode_ms_p90: float
    decode_tok_s: float
    peak_rss_mb: float
    file_size_mb: float
    # Bytes one decode step must stream from memory: weights + KV cache at decode_depth.
    bytes_per_token: int
    # The spread behind decode_ms_p50 (evaluator.latency_stats.spread).
    decode_ms_min: float | None = None
    decode_n: int | None = None
    decode_cv: float | None = None
    decode_rel_ci: float | None = None
    stable: bool | None = None
    bandwidth_gb_s: float | None = None
    roofline_frac: float | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def probe(
    model_dir: str | Path,
    settings: ProbeSettings = ProbeSettings(),  # noqa: B008 - frozen, so sharing is safe
    bandwidth_gb_s: float | None = None,
    export_dir: str | Path | None = None,
    tick: Callable[[], None] | None = None,
) -> ProbeResult:
    """Measure one model directory in a fresh subprocess; ProbeError if the child fails.

    For the executorch runtime the model is first exported and lowered in another,
    untimed subprocess (see evaluator.executorch_export); `export_dir` keeps that program
    and reuses it while the model and settings it was made for are unchanged (default: a
    temporary directory, removed afterwards). tick() runs every few seconds meanwhile.
    """
    model_dir = Path(model_dir).resolve()
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"not a model directory (no config.json): {model_dir}")
    weight_files(model_dir)  # a missing file is clear here, without starting a child
    args = ["probe", str(model_dir), "--settings", json.dumps(asdict(settings))]
    with contextlib.ExitStack() as stack:
        if settings.runtime == "executorch":
            if export_dir is None:
                export_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="probe-pte-"))
            prepared = prepare_executorch(model_dir, settings, Path(export_dir), tick=tick)
            args += ["--prepared", str(prepared)]
        raw = _run_child(args, settings.threads, settings.timeout_s, tick=tick)
    result = ProbeResult(**raw)
    if bandwidth_gb_s is not None:
        result.bandwidth_gb_s = bandwidth_gb_s
        result.roofline_frac = roofline_fraction(
            result.bytes_per_token, bandwidth_gb_s, result.decode_ms_p50
        )
    return result


def executorch_cache_len(settings: ProbeSettings) -> int:
    """KV-cache positions the exported program needs: the prompt, or depth + decoded tokens.

    Every prefill and decode round (warm-up included) starts again from position 0.
    """
    return max(settings.prompt_tokens, settings.decode_depth + settings.decode_tokens)


def export_key(model_dir: Path, settings: ProbeSettings) -> dict:
    """What an exported program depends on; a kept program is reused only if this matches."""
    return {
        "model_dir": str(model_dir),
        "weights": [
            [f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in weight_files(model_dir)
        ],
        "config": (model_dir / "config.json").read_text(),
        "dtype": settings.dtype,
        "precision": settings.precision,
        # Bumped when the export's recipe changes (2: bf16 lowered in float16).
        "recipe": 2,
        "max_cache_len": executorch_cache_len(settings),
        "prompt_tokens": settings.prompt_tokens,
        "decode_depth": settings.decode_depth,
    }


def prepare_executorch(
    model_dir: Path, settings: ProbeSettings, out_dir: Path, tick: Callable[[], None] | None = None
) -> Path:
    """Export and lower the model to out_dir/model.pte (untimed), unless already there.

    A fresh subprocess, so export's time and memory stay out of the probe; it uses every
    core, since nothing is being timed. ProbeError if it fails.
    """
    if importlib.util.find_spec("executorch") is None:
        raise ProbeError(
            "the executorch runtime needs the executorch package: run `make install-executorch`"
        )
    if settings.precision in quant.EXECUTORCH_REFUSES:
        raise ProbeError(f"{settings.precision}: {quant.EXECUTORCH_REFUSES[settings.precision]}")
    key = export_key(model_dir, settings)
    key_file = out_dir / "key.json"
    if key_file.is_file() and json.loads(key_file.read_text()) == key:
        if (out_dir / "model.pte").is_file() and (out_dir / "export.json").is_file():
            return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    key_file.unlink(missing_ok=True)
    threads = os.cpu_count() or 1
    _run_child(
        [
            str(model_dir),
            "--max-cache-len",
            str(key["max_cache_len"]),
            "--prompt-tokens",
            str(settings.prompt_tokens),
            "--decode-depth",
            str(settings.decode_depth),
            "--dtype",
            settings.dtype,
            "--precision",
            settings.precision,
        ],
        threads=threads,
        timeout_s=settings.export_timeout_s,
        module="evaluator.executorch_export",
        out_flag=out_dir,
        what="ExecuTorch export",
        tick=tick,
    )
    key_file.write_text(json.dumps(key))
    return out_dir


def roofline_fraction(bytes_per_token: int, bandwidth_gb_s: float, decode_ms: float) -> float:
    """Memory-bound time per token over measured time per token (1.0 = at the roofline)."""
    if bandwidth_gb_s <= 0 or decode_ms <= 0:
        raise ValueError("bandwidth and decode time must be positive")
    return (bytes_per_token / (bandwidth_gb_s * 1e9)) / (decode_ms / 1000)


def measure_bandwidth(
    threads: int = 1, size_mb: int | None = None, timeout_s: float = 120
) -> float:
    """Memory read bandwidth of this machine in GB/s, with `threads` torch threads.

    The fastest of streaming kernels (sum, copy, matrix-vector product) over a buffer of
    `size_mb` (default: twice the last-level cache, at least 256 MB), best of several runs.
    Takes seconds: callers measure once per device profile and keep the figure.
    """
    args = ["bandwidth"] + (["--size-mb", str(size_mb)] if size_mb else [])
    return _run_child(args, threads=threads, timeout_s=timeout_s)["bandwidth_gb_s"]


def _run_child(
    args: list[str],
    threads: int,
    timeout_s: float,
    module: str = "evaluator.probe_worker",
    out_flag: Path | None = None,
    what: str = "latency probe",
    tick: Callable[[], None] | None = None,
) -> dict:
    """Run `python -m module ARGS --threads N --out FILE` and return FILE's JSON.

    With `out_flag`, --out names that directory instead and its export.json is the result.
    tick() runs every TICK_S seconds while the child works (the caller's heartbeat).
    """
    env = dict(os.environ)
    # Set in the environment so the OpenMP/MKL pools are sized before torch even loads.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")])),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        TRANSFORMERS_VERBOSITY="error",
    )
    with tempfile.TemporaryDirectory(prefix="probe-") as tmp:
        out = Path(tmp) / "result.json" if out_flag is None else out_flag / "export.json"
        if out_flag is not None:
            out.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", module, *args]
        cmd += ["--threads", str(threads), "--out", str(out if out_flag is None else out_flag)]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _, stderr = proc.communicate(
                    timeout=max(0.01, min(TICK_S, deadline - time.monotonic()))
                )
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    proc.kill()
                    _, stderr = proc.communicate()
                    raise ProbeError(
                        f"{what} exceeded its {timeout_s:g} s timeout{_tail(stderr)}"
                    ) from None
                if tick is not None:
                    tick()
        if proc.returncode != 0 or not out.is_file():
            said = _said(stderr)
            raise ProbeError(f"{what} failed (exit {proc.returncode}){said}{_tail(stderr)}")
        raw = json.loads(out.read_text())
    bad = [k for k, v in raw.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ProbeError(f"latency probe returned non-finite figures: {bad}")
    return raw


def _said(stderr: str | bytes | None) -> str:
    """The child's own `probe error:` line, first: native libraries (XNNPACK's cpuinfo) may
    log after it, and a shortened message must still say why."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    lines = [ln for ln in (stderr or "").splitlines() if ln.startswith("probe error: ")]
    return f": {lines[-1].removeprefix('probe error: ')}" if lines else ""


def _tail(stderr: str | bytes | None, chars: int = 2000) -> str:
    if not stderr:
        return ""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    return ":\n" + stderr.strip()[-chars:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Probe one model directory's CPU latency.")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--decode-depth", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runtime", default="eager", choices=RUNTIMES)
    parser.add_argument("--bandwidth", action="store_true", help="measure it for roofline_frac")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    args = parser.parse_args(argv)
    settings = ProbeSettings(
        threads=args.threads,
        dtype=args.dtype,
        prompt_tokens=args.prompt_tokens,
        decode_depth=args.decode_depth,
        repeats=args.repeats,
        runtime=args.runtime,
    )
    bandwidth = measure_bandwidth(args.threads) if args.bandwidth else None
    result = probe(args.model_dir, settings, bandwidth)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    for name, value in result.to_dict().items():
        if name not in ("samples", "environment"):
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"{name:>18}  {shown}")
    env = result.environment
    where = f"{env['cpu_model']}; {env['threads']} threads; {env['runtime']}; torch {env['torch']}"
    print(f"{'environment':>18}  {where}")


if __name__ == "__main__":
    main()
