"""Zero-shot evaluation of one checkpoint on the task suite with EleutherAI's lm-eval.

The model is loaded once and wrapped in lm-eval's own HFLM; the tasks run one at a time
(simple_evaluate's setup, then `lm_eval.evaluate`, per task) so that progress and
cancellation work between tasks, and a hook inside HFLM reports progress (and polls for
cancellation) within a task. Nothing here changes a score: tests/test_parity.py holds us to
stock lm-eval, request by request.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator import datasource, quant
from evaluator.tasks_spec import HARNESS_TASKS, HEADLINE

# The suite (lm-eval task names in the paper's column order, headline metrics): tasks_spec.
TASKS = HARNESS_TASKS
# On CPU a batch of 8 already fills the matrix units (8 x ~100 tokens); bigger batches only
# add padding and a [batch, tokens, vocab] log-softmax that outgrows the caches. On CUDA,
# lm-eval's "auto" probes the largest batch that fits, up to this bound.
CPU_BATCH_SIZE = 8
CUDA_MAX_BATCH_SIZE = 256
# Callbacks may touch the database, so within a task they run at most this often.
POLL_INTERVAL_S = 0.5

# lm-eval's defaults (lm_eval.defaults), as simple_evaluate applies them.
SEEDS = {"random": 0, "numpy": 1234, "torch": 1234, "fewshot": 1234}

Progress = Callable[[int, int, str, float], None]


class Cancelled(Exception):
    """should_stop() said so; raised between requests, so no partial result exists."""


@dataclass
class TaskResult:
    task: str
    version: str | float | None
    metrics: dict[str, tuple[float, float | None]]  # metric -> (value, stderr)
    n: int
    samples: list[dict] = field(default_factory=list, repr=False)

    @property
    def headline(self) -> tuple[str, float]:
        metric = HEADLINE.get(self.task, "acc")
        return metric, self.metrics[metric][0]


@dataclass
class EvalResult:
    tasks: list[TaskResult]
    provenance: dict

    def task(self, name: str) -> TaskResult:
        return next(t for t in self.tasks if t.task == name)


class _Tracker:
    """Counts finished requests of the current task; reports progress and polls should_stop.

    Installed as HFLM's cache hook, which HFLM calls once per answered loglikelihood
    request: the one per-request callback lm-eval offers without touching its batching.
    """

    dbdict = None

    def __init__(self, progress: Progress | None, should_stop: Callable[[], bool] | None):
        self.progress, self.should_stop = progress, should_stop
        self.index, self.n_tasks, self.task = 0, 1, ""
        self.total, self.done, self.last_poll = 0, 0, 0.0

    def start_task(self, index: int, n_tasks: int, task: str) -> None:
        self.index, self.n_tasks, self.task = index, n_tasks, task
        self.total = self.done = 0
        self.poll(0.0)

    def start_requests(self, total: int) -> None:
        self.total, self.done = total, 0

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        self.done += 1
        if self.total and time.monotonic() - self.last_poll >= POLL_INTERVAL_S:
            self.poll(min(self.done / self.total, 1.0))

    def poll(self, fraction: float) -> None:
        self.last_poll = time.monotonic()
        if self.should_stop is not None and self.should_stop():
            raise Cancelled(f"cancelled during {self.task}")
        if self.progress is not None:
            self.progress(self.index, self.n_tasks, self.task, fraction)


def _make_lm(model, tokenizer, batch_size: int | str, tracker: _Tracker, engine: str):
    """The lm-eval model the tasks run on: our prefix-sharing `hf-trie` ("fast") or stock
    HFLM ("stock"), both counting what they forward for the run's cost record."""
    from lm_eval.models.huggingface import HFLM

    from evaluator.engine import ENGINES, Cost, TrieLM

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {sorted(ENGINES)}")
    base = TrieLM if engine == "fast" else HFLM

    class TrackedLM(base):
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            tracker.start_requests(len(requests))
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

        def _model_call(self, inps, attn_mask=None, labels=None):
            # Stock's forwards (ours count themselves): padded tokens, as the model saw them.
            self.cost.tokens_padded += inps.numel()
            self.cost.forwards += 1
            return super()._model_call(inps, attn_mask=attn_mask, labels=labels)

    lm = TrackedLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        max_batch_size=CUDA_MAX_BATCH_SIZE,
    )
    if engine == "stock":
        lm.cost = Cost()
    lm.set_cache_hook(tracker)
    return lm


def _engine_info(engine: str, lm) -> dict:
    from evaluator.engine import ENGINES, VERSION

    info = {"name": engine, "lm_eval_model": ENGINES[engine], "version": None}
    if engine == "fast":  # the batch size does not apply: rows and forwards are by tokens
        info.update(version=VERSION, row_tokens=lm.row_tokens, forward_tokens=lm.forward_tokens)
    return info


def warm_up() -> float:
    """Import what every evaluation needs and index lm-eval's tasks, once per process;
    returns the seconds it took (logged)."""
    import logging

    started = time.perf_counter()
    import lm_eval.evaluator  # noqa: F401
    import transformers  # noqa: F401

    import evaluator.engine  # noqa: F401  (torch, HFLM, our model type)

    datasource.stock_task_manager()
    took = time.perf_counter() - started
    logging.getLogger(__name__).info("evaluation imports and task index ready in %.1f s", took)
    return took


def _benchmark_label(source: datasource.DataSource, limit) -> str:
    if source.kind == "sample":
        return "sample"
    return "limited" if limit is not None else "full"


def _jsonable(obj: Any) -> Any:
    """Per-sample records as plain JSON values (numpy scalars, tuples, sets flattened)."""

    def default(o: Any) -> Any:
        if hasattr(o, "item"):
            return o.item()
        if isinstance(o, (set, frozenset)):
            return sorted(o, key=str)
        return str(o)

    return json.loads(json.dumps(obj, default=default))


def _metrics(task_results: dict) -> dict[str, tuple[float, float | None]]:
    """lm-eval's "acc,none" / "acc_stderr,none" keys as {"acc": (value, stderr)}."""
    out: dict[str, tuple[float, float | None]] = {}
    for key, value in task_results.items():
        if "," not in key or "_stderr," in key:
            continue
        metric, filt = key.split(",", 1)
        stderr = task_results.get(f"{metric}_stderr,{filt}")
        name = metric if filt == "none" else key
        out[name] = (float(value), float(stderr) if isinstance(stderr, (int, float)) else None)
    return out


def _run_task(lm, loaded: dict, limit: int | float | None) -> dict:
    """What `lm_eval.simple_evaluate(model=lm, tasks=[task], num_fewshot=0)` does, minus
    its environment report (torch's collect_env and `git describe`, ~0.6 s a call): that
    is paid once per run by the stock CLI but would be paid per task here, which on a GPU
    costs more than the sample set's requests. Same seeds, same few-shot setting, same
    `lm_eval.evaluate` call; tests/test_parity.py holds the results to the stock ones."""
    import random

    import numpy as np
    from lm_eval import evaluate as lm_eval_evaluate
    from lm_eval.utils import set_torch_seed

    random.seed(SEEDS["random"])
    np.random.seed(SEEDS["numpy"])
    set_torch_seed(SEEDS["torch"])
    for task_obj in loaded["tasks"].values():
        if task_obj.get_config("num_fewshot") != 0:
            task_obj.set_config(key="num_fewshot", value=0)
        task_obj.set_fewshot_seed(seed=SEEDS["fewshot"])
    return lm_eval_evaluate(
        lm=lm,
        task_dict=loaded,
        limit=limit,
        bootstrap_iters=100000,
        log_samples=True,
        fewshot_as_multiturn=True,
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {pkg: version(pkg) for pkg in ("lm_eval", "transformers", "torch", "datasets")}


def evaluate(
    model_dir: str | Path | None,
    tasks: list[str] = TASKS,
    data: str | Path = "sample",
    limit: int | float | None = None,
    device: str | None = None,
    dtype: str = "float32",
    batch_size: int | str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    model=None,
    tokenizer=None,
    engine: str = "fast",
    precision: str = quant.REFERENCE,
) -> EvalResult:
    """Evaluate a model directory zero-shot on `tasks`; see the module docstring.

    precision: a recipe of evaluator.quant, applied to the loaded model (a preloaded one is
    quantized in place) before any task runs; QuantRefused says why it cannot be."""
    from evaluator.modeling import load_model

    tasks = list(tasks)
    unknown = [t for t in tasks if t not in HEADLINE]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; known: {TASKS}")
    source = datasource.resolve(data)
    source.check(tasks)
    tracker = _Tracker(progress, should_stop)
    tracker.start_task(0, len(tasks), tasks[0])
    started = time.time()
    if model is None:
        model, tokenizer = load_model(model_dir, device=device, dtype=dtype)
    elif tokenizer is None:
        raise ValueError("a preloaded model needs its tokenizer too")
    quantized = quant.apply(model, precision)
    tracker.poll(0.0)  # loading and indexing take seconds: a cancel must not wait for them
    device = str(model.device)
    if batch_size is None:
        batch_size = "auto" if device.startswith("cuda") else CPU_BATCH_SIZE
    lm = _make_lm(model, tokenizer, batch_size, tracker, engine)

    results, identity, detected, cost = [], {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="eval-tasks-") as workdir:
        if source.kind != "hub":
            source.write_yamls(tasks, workdir)
        manager = source.task_manager(workdir)
        for i, task in enumerate(tasks):
            tracker.start_task(i, len(tasks), task)
            name = source.run_name(task)
            loaded = manager.load([name])
            tracker.poll(0.0)
            task_obj = loaded["tasks"][name]
            task_started, lm.cost = time.perf_counter(), type(lm.cost)()
            out = _run_task(lm, loaded, limit)
            cost[task] = {"wall_s": round(time.perf_counter() - task_started, 3),
                          **lm.cost.as_dict(), "requests": tracker.total}  # fmt: skip
            identity[task] = source.identity(task, task_obj)
            detected[task] = list(lm.batch_sizes.values())
            results.append(
                TaskResult(
                    task=task,
                    version=out["versions"].get(name),
                    metrics=_metrics(out["results"][name]),
                    n=int(out["n-samples"][name]["effective"]),
                    samples=_jsonable(out["samples"][name]),
                )
            )
            del loaded, task_obj, out  # one dataset in memory at a time
    if progress is not None:
        progress(len(tasks) - 1, len(tasks), tasks[-1], 1.0)

    provenance = {
        "benchmark": _benchmark_label(source, limit),
        "limit": limit,
        "num_fewshot": 0,
        "data": {**source.describe(), "tasks": identity},
        "task_versions": {r.task: r.version for r in results},
        "versions": _versions(),
        "dtype": str(model.dtype).removeprefix("torch."),
        "batch_size": batch_size,
        "device": device,
        "seeds": SEEDS,
        "engine": _engine_info(engine, lm),
        "precision": quantized.as_dict(),
        "cost": cost,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 3),
    }
    if batch_size == "auto":
        provenance["batch_sizes_detected"] = detected
    return EvalResult(tasks=results, provenance=provenance)


def write_samples_jsonl_gz(result: EvalResult, path: str | Path) -> None:
    """Every per-sample record, one JSON line each with its stock task name under "task"."""
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for task in result.tasks:
            for sample in task.samples:
                fh.write(json.dumps({"task": task.task, **sample}, ensure_ascii=False) + "\n")


def read_samples_jsonl_gz(path: str | Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def format_table(result: EvalResult) -> str:
    rows = [f"{'task':<14} {'metric':<9} {'value':>7} {'stderr':>7} {'n':>6}"]
    for t in result.tasks:
        for metric, (value, stderr) in sorted(t.metrics.items()):
            mark = "*" if metric == HEADLINE.get(t.task) else " "
            err = f"{stderr:7.4f}" if stderr is not None else "    n/a"
            rows.append(f"{t.task:<14} {metric + mark:<9} {value:7.4f} {err} {t.n:>6}")
    p = result.provenance
    rows.append(f"* headline metric; benchmark={p['benchmark']} data={p['data']['source']}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m evaluator.harness", description=__doc__)
    parser.add_argument("model_dir")
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS, metavar="TASK")
    parser.add_argument("--data", default="sample", help="sample | hub | a directory")
    parser.add_argument("--limit", type=float, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", default=None)
    parser.add_argument("--engine", default="fast", choices=["fast", "stock"])
    parser.add_argument("--precision", default=quant.REFERENCE, choices=quant.RECIPES)
    parser.add_argument("--json", dest="json_out", default=None, help="write results here")
    parser.add_argument("--samples", default=None, help="write per-sample .jsonl.gz here")
    args = parser.parse_args(argv)
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    batch = args.batch_size
    batch = int(batch) if batch is not None and batch.isdigit() else batch

    def show(i: int, n: int, task: str, frac: float) -> None:
        print(f"\r[{i + 1}/{n}] {task:<14} {frac:6.1%}", end="", file=sys.stderr, flush=True)

    result = evaluate(
        args.model_dir, args.tasks, data=args.data, limit=limit, device=args.device,
        dtype=args.dtype, batch_size=batch, progress=show, engine=args.engine,
        precision=args.precision,
    )  # fmt: skip
    print(file=sys.stderr)
    print(format_table(result))
    if args.json_out:
        doc = {
            "tasks": [{"task": t.task, "version": t.version, "n": t.n, "metrics": t.metrics}
                      for t in result.tasks],
            "provenance": result.provenance,
        }  # fmt: skip
        Path(args.json_out).write_text(json.dumps(doc, indent=2))
    if args.samples:
        write_samples_jsonl_gz(result, args.samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
