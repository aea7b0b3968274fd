"""Export the task datasets from a local Hugging Face datasets cache to a data directory.

For air-gapped sites: on a machine that has run the stock tasks once (so the datasets are
in its cache), write DIR/<task>/<split>.jsonl, copy DIR across, and point EVAL_DATA at it.
Each task's dataset path, config and scored split come from lm-eval's stock task, so the
directory holds exactly what `--data hub` would have read. Rows are written unprocessed:
lm-eval's own `process_docs` runs at evaluation time, as it does for the Hub.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from evaluator.datasource import eval_split, stock_entry


def export(tasks: list[str], out_dir: str | Path, cache_dir: str | Path | None = None) -> dict:
    """Write each task's scored split as JSON lines; return {task: {"file", "items"}}.

    Reads the cache only: run with HF_DATASETS_OFFLINE=1 (the CLI below sets it), so that a
    dataset missing from the cache fails here instead of being fetched.
    """
    import datasets

    out = Path(out_dir)
    written = {}
    for task in tasks:
        cfg = stock_entry(task).cfg or {}
        split = eval_split(task)
        ds = datasets.load_dataset(
            cfg["dataset_path"],
            cfg.get("dataset_name"),
            split=split,
            cache_dir=str(cache_dir) if cache_dir else None,
        )
        dest = out / task / f"{split}.jsonl"
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Write beside, then rename: a half-written file must never look like a dataset.
        tmp = dest.with_suffix(".jsonl.partial")
        with tmp.open("w", encoding="utf-8") as fh:
            for row in ds:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.replace(dest)
        written[task] = {"file": str(dest), "items": len(ds)}
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    from evaluator.harness import TASKS

    parser = argparse.ArgumentParser(prog="python -m evaluator.datasets_export")
    parser.add_argument("out_dir")
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS, metavar="TASK")
    parser.add_argument("--cache-dir", default=None, help="datasets cache (default: HF's)")
    args = parser.parse_args(argv)
    for task, info in export(args.tasks, args.out_dir, args.cache_dir).items():
        print(f"{task:<14} {info['items']:>6} items  {info['file']}")
    return 0


if __name__ == "__main__":
    # Before `datasets` is imported: it reads the switch once, at import.
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    sys.exit(main())
