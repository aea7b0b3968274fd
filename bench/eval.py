"""Wall time of our evaluation pipeline against the stock lm-eval command line.

Both sides run as fresh subprocesses on the same MobileLLM-125M-shaped random-weight model,
the same sample-set tasks (the yamls our harness generates), the same batch size and the
same thread count, so each time includes interpreter start, imports, model load and all
eight tasks. Target: ours / stock <= 1.10.

    python bench/eval.py [--threads N] [--batch-size B] [--repeats R] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluator import datasource  # noqa: E402
from evaluator.harness import CPU_BATCH_SIZE, TASKS  # noqa: E402
from evaluator.machine import cpu_model  # noqa: E402
from evaluator.tinymodel import MOBILELLM_125M, build_tiny_model  # noqa: E402


def timed(cmd: list[str], env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}); see {log}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=CPU_BATCH_SIZE)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data", default="sample", help="sample | DIR")
    parser.add_argument("--model-dir", default=None, help="reuse a model (else built, ~10 s)")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    model_dir = Path(args.model_dir) if args.model_dir else work / "mobilellm-125m"
    if not args.model_dir:
        build_tiny_model(model_dir, MOBILELLM_125M)
    source = datasource.resolve(args.data)
    source.check(TASKS)
    yamls = source.write_yamls(TASKS, work / "yamls")

    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    ours = [sys.executable, "-m", "evaluator.harness", str(model_dir), "--data", args.data,
            "--device", "cpu", "--batch-size", str(args.batch_size)]  # fmt: skip
    stock = [sys.executable, "-m", "lm_eval", "--model", "hf",
             "--model_args", f"pretrained={model_dir},dtype=float32",
             "--tasks", ",".join(source.run_name(t) for t in TASKS),
             "--include_path", str(yamls), "--batch_size", str(args.batch_size),
             "--device", "cpu"]  # fmt: skip

    times: dict[str, list[float]] = {"ours": [], "stock": []}
    for r in range(args.repeats):
        # Alternate the order so that a warm page cache or a noisy neighbour favours neither.
        pair = [("stock", stock), ("ours", ours)]
        for name, cmd in pair if r % 2 == 0 else pair[::-1]:
            times[name].append(timed(cmd, env, work / f"{name}-{r}.log"))
            print(f"run {r + 1}/{args.repeats} {name:<5} {times[name][-1]:7.1f} s", flush=True)

    from importlib.metadata import version

    best = {k: min(v) for k, v in times.items()}
    report = {
        "ours_s": round(best["ours"], 1),
        "stock_s": round(best["stock"], 1),
        "ratio": round(best["ours"] / best["stock"], 3),
        "runs": times,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "data": args.data,
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("lm_eval", "torch", "transformers", "datasets")},
        "date": time.strftime("%Y-%m-%d"),
        "logs": str(work),
    }
    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
