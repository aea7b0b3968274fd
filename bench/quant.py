"""The quantization ladder on a model of a real shape: what each precision costs to build,
to evaluate, how large its weights are, and how fast and large it runs.

Per precision (evaluator/quant.py recipes), on a random-weight MobileLLM-125M-shaped model:
a fresh subprocess loads the checkpoint, applies the recipe (build time), reports the
weights as run and packed, then evaluates the chosen tasks on the sample set (eval time,
peak RSS); then the latency probe (evaluator.latency: its own subprocess) measures Execute
and peak RSS in eager PyTorch, and with --runtimes eager,executorch also lowered to XNNPACK (int8
weight-only is refused there: no XNNPACK kernel). Random weights: the accuracies are
noise, the costs are not.

    python bench/quant.py [--precisions fp32,bf16,int8,int4] [--threads N]
                          [--tasks T ...] [--runtimes eager,executorch] [--no-eval]
                          [--rounds R] [--model-dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/queue.py would shadow the standard library's queue (torch.fx imports it): the
# script's own folder leaves the path, the repository root takes its place.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from evaluator import latency, quant  # noqa: E402
from evaluator.machine import cpu_model  # noqa: E402
from evaluator.tinymodel import MOBILELLM_125M, build_tiny_model  # noqa: E402

MB = 2**20


def child(args) -> None:
    """One precision, in this process: load, quantize, evaluate; one JSON line out."""
    import torch

    from evaluator.harness import evaluate
    from evaluator.modeling import load_model

    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model_dir, device="cpu")
    started = time.perf_counter()
    info = quant.apply(model, args.precision)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    # The recipe is applied already: the harness is told fp32 so it does not apply it twice.
    result = evaluate(None, tasks=args.tasks, model=model, tokenizer=tokenizer)
    eval_s = time.perf_counter() - started
    status = Path("/proc/self/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    fallback = sum(c["fallback_requests"] for c in result.provenance["cost"].values())
    print(json.dumps({
        "build_s": build_s, "eval_s": eval_s, "eval_peak_rss_mb": hwm_kb / 1024,
        "weights_mb": info.weights_bytes / MB, "weights_packed_mb": info.weights_bytes_packed / MB,
        "fallback_requests": fallback,
        "acc": {t.task: t.headline[1] for t in result.tasks},
    }))  # fmt: skip


def run_child(args, model_dir: Path, precision: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--precision", precision, "--model-dir",
           str(model_dir), "--threads", str(args.threads), "--tasks", *args.tasks]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{precision} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def probe(model_dir: Path, precision: str, runtime: str, threads: int, export_dir: Path) -> dict:
    settings = latency.ProbeSettings(threads=threads, runtime=runtime, precision=precision,
                                     budget_s=10)  # fmt: skip
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    try:
        # An ExecuTorch program is exported once and kept there for the later rounds.
        r = latency.probe(model_dir, settings, export_dir=export_dir)
    except latency.ProbeError as exc:
        return {"error": str(exc)[:600]}  # the child's reason leads (latency._said)
    exported = r.environment.get("export") or {}
    return {
        "execute_ms": r.decode_ms_p50, "decode_cv": r.decode_cv, "prefill_ms": r.prefill_ms,
        "init_ms": r.init_ms, "peak_rss_mb": r.peak_rss_mb, "file_mb": r.file_size_mb,
        "export_s": exported.get("export_s"), "lower_s": exported.get("lower_s"),
        "load_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "wall_s": time.perf_counter() - started,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default=",".join(quant.RECIPES))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--tasks", nargs="+", default=["arc_easy", "boolq"])
    parser.add_argument("--runtimes", default="eager", help="eager and/or executorch")
    parser.add_argument("--no-eval", action="store_true", help="latency only")
    parser.add_argument("--rounds", type=int, default=1, help="probe rounds, alternating")
    parser.add_argument("--model-dir", default=None, help="reuse a model (else built)")
    parser.add_argument("--json", dest="json_out", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    model_dir = Path(args.model_dir or tempfile.mkdtemp(prefix="bench-quant-")) / "mobilellm-125m"
    if not (model_dir / "config.json").exists():
        build_tiny_model(model_dir, MOBILELLM_125M)
    asked = set(args.precisions.split(","))  # exactly these (fp32 is not implied here)
    precisions = [p for p in quant.parse_precisions(args.precisions) if p in asked]
    rows = {p: {} if args.no_eval else run_child(args, model_dir, p) for p in precisions}
    # Probe rounds alternate between the precisions, so that a change in the machine's load
    # falls on all of them; a round's wall_s includes the export only the first time.
    for round_no in range(args.rounds):
        for precision in precisions:
            for runtime in args.runtimes.split(","):
                exports = model_dir.parent / "exports" / f"{runtime}-{precision}"
                got = probe(model_dir, precision, runtime, args.threads, exports)
                rows[precision].setdefault(runtime, []).append(got)
                print(round_no, precision, runtime, json.dumps(got), flush=True)
    for row in rows.values():
        for runtime in args.runtimes.split(","):
            done = [r["execute_ms"] for r in row[runtime] if "execute_ms" in r]
            row[f"{runtime}_execute_ms_median"] = statistics.median(done) if done else None
    summary = {"shape": "mobilellm-125m", "threads": args.threads, "tasks": args.tasks,
               "cpu": cpu_model(), "precisions": rows}  # fmt: skip
    print(json.dumps(summary, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
