"""Wall time, tokens forwarded and peak memory of the two evaluation engines.

Ours (`hf-trie`, EVAL_ENGINE=fast) and stock lm-eval HFLM (EVAL_ENGINE=stock) run through the
same harness, each in a fresh subprocess (interpreter start, imports, model load and all
eight tasks count), alternating within one run, same threads and batch size, on a random-
weight model of a real shape. Targets (issue 11): ours / stock <= 0.5 in wall time, ours'
tokens forwarded / unique tokens of the request trie <= 1.1, peak memory <= stock's + 10 %.

    python bench/eval.py [--shape mobilellm-125m|gpt2-124m] [--threads N] [--repeats R]
                         [--tasks T ...] [--data sample|DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The project root, not bench/: bench/queue.py would shadow the standard library's queue.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from evaluator.harness import CPU_BATCH_SIZE, TASKS  # noqa: E402
from evaluator.machine import cpu_model  # noqa: E402
from evaluator.tinymodel import GPT2_124M, MOBILELLM_125M, build_tiny_model  # noqa: E402

SHAPES = {"mobilellm-125m": MOBILELLM_125M, "gpt2-124m": GPT2_124M}
ENGINES = ("fast", "stock")


def child(args) -> None:
    """One engine, in this process: evaluate, then print what it cost as one JSON line."""
    import torch

    from evaluator.engine import packing
    from evaluator.harness import evaluate

    torch.set_num_threads(args.threads)
    trie = {"tokens": 0}
    if args.engine == "fast":
        # Count the unique tokens of each request set (the ideal an engine can reach).
        original = packing.pack

        def counting(requests, max_length, row_tokens):
            inputs = [packing.model_input(c, t, max_length) for c, t in requests]
            trie["tokens"] += packing.unique_trie_tokens(inputs)
            return original(requests, max_length, row_tokens)

        packing.pack = counting
    started = time.perf_counter()
    result = evaluate(args.model_dir, tasks=args.tasks, data=args.data,
                      batch_size=args.batch_size, engine=args.engine)  # fmt: skip
    cost = result.provenance["cost"]
    total = {k: sum(c[k] for c in cost.values())
             for k in ("requests", "tokens_forwarded", "tokens_padded", "forwards")}  # fmt: skip
    # CPU seconds of the whole process (start-up included): on a shared machine a figure
    # that waiting for a busy core does not inflate, unlike wall time.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    status = Path("/proc/self/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    print(json.dumps({
        "eval_s": time.perf_counter() - started, **total,
        "cpu_s": usage.ru_utime + usage.ru_stime, "trie_tokens": trie["tokens"],
        "peak_rss_mb": hwm_kb / 1024,
        "tasks_s": {t: c["wall_s"] for t, c in cost.items()},
        "acc": {t.task: t.metrics.get("acc", (None,))[0] for t in result.tasks},
    }))  # fmt: skip


def run_one(engine: str, args, model_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--model-dir", str(model_dir),
           "--threads", str(args.threads), "--batch-size", str(args.batch_size),
           "--data", args.data, "--tasks", *args.tasks]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="mobilellm-125m")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=CPU_BATCH_SIZE)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    parser.add_argument("--data", default="sample", help="sample | DIR")
    parser.add_argument("--model-dir", default=None, help="reuse a model (else built)")
    parser.add_argument("--json", dest="json_out", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    model_dir = Path(args.model_dir or tempfile.mkdtemp(prefix="bench-eval-")) / args.shape
    if not (model_dir / "config.json").exists():
        build_tiny_model(model_dir, SHAPES[args.shape])
    runs: dict[str, list[dict]] = {e: [] for e in ENGINES}
    for r in range(args.repeats):
        for engine in ENGINES if r % 2 == 0 else ENGINES[::-1]:  # alternate who goes first
            runs[engine].append(run_one(engine, args, model_dir))
            last = runs[engine][-1]
            print(f"repeat {r + 1} {engine:<5} {last['wall_s']:7.1f} s wall"
                  f" {last['cpu_s']:7.1f} s CPU", flush=True)  # fmt: skip
    fast, stock = runs["fast"], runs["stock"]
    med = {e: statistics.median(x["wall_s"] for x in runs[e]) for e in ENGINES}
    ratios = [f["wall_s"] / s["wall_s"] for f, s in zip(fast, stock, strict=True)]
    summary = {
        "shape": args.shape, "threads": args.threads, "batch_size": args.batch_size,
        "data": args.data, "tasks": args.tasks, "cpu": cpu_model(), "repeats": args.repeats,
        "wall_s": med, "ratio_median": statistics.median(ratios), "ratios": ratios,
        "cpu_s": {e: statistics.median(x["cpu_s"] for x in runs[e]) for e in ENGINES},
        "cpu_ratios": [f["cpu_s"] / s["cpu_s"] for f, s in zip(fast, stock, strict=True)],
        "eval_s": {e: statistics.median(x["eval_s"] for x in runs[e]) for e in ENGINES},
        "requests": fast[0]["requests"],
        "requests_per_s": {e: fast[0]["requests"] / med[e] for e in ENGINES},
        "tokens_forwarded_fast": fast[0]["tokens_forwarded"],
        "tokens_padded": {e: runs[e][0]["tokens_padded"] for e in ENGINES},
        "trie_tokens": fast[0]["trie_tokens"],
        "forwarded_over_trie": fast[0]["tokens_forwarded"] / fast[0]["trie_tokens"],
        "peak_rss_mb": {e: max(x["peak_rss_mb"] for x in runs[e]) for e in ENGINES},
        "same_accuracy": all(f["acc"] == stock[0]["acc"] for f in fast),
        "tasks_s": {e: runs[e][0]["tasks_s"] for e in ENGINES},
    }  # fmt: skip
    print(json.dumps(summary, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
