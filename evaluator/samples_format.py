"""Per-sample records exactly as `lm_eval --log_samples` writes them.

The site stores a run's records as one .jsonl.gz with the stock task name under "task" and
lm-eval's in-memory values made JSON (arguments as [context, continuation] pairs, numbers
as numbers): compact, and what /compare/ reads. Downloads and bundles convert them, per
task, with lm-eval's own sanitising (EvaluationTracker.save_results_samples): arguments as
{"gen_args_i": {"arg_j": ...}}, resps and filtered_resps as strings, target as a string,
no "task" key, one file per task named samples_<task>_<date id>.jsonl.
"""

from __future__ import annotations

import json
from collections.abc import Iterable


def to_lm_eval(record: dict) -> dict:
    """One stored record in lm-eval's written form (key order kept, as lm-eval keeps it)."""
    from lm_eval.utils import sanitize_list

    sample = {k: v for k, v in record.items() if k != "task"}
    arguments = {}
    for i, arg in enumerate(sample.get("arguments") or []):
        # lm-eval's requests hold tuples; stored JSON made them lists (or already a dict).
        arguments[f"gen_args_{i}"] = {f"arg_{j}": item for j, item in enumerate(arg)}
    if isinstance(sample.get("arguments"), dict):
        arguments = sample["arguments"]
    sample["resps"] = sanitize_list(sample.get("resps"))
    sample["filtered_resps"] = sanitize_list(sample.get("filtered_resps"))
    sample["arguments"] = arguments
    sample["target"] = str(sample.get("target"))
    return sample


def date_id(iso_time: str | None) -> str:
    """lm-eval's file-name timestamp (datetime.isoformat() with ':' as '-')."""
    return (iso_time or "1970-01-01T00:00:00").replace(":", "-")


def files(records: Iterable[dict], names: dict[str, str], when: str | None) -> dict[str, bytes]:
    """{file name: content}: one lm-eval samples file per task, records in stored order.
    `names` maps the stock task name to the name it ran under (arc_easy -> arc_easy_sample)."""
    lines: dict[str, list[str]] = {task: [] for task in names}
    for record in records:
        task = record.get("task")
        if task in lines:
            lines[task].append(json.dumps(to_lm_eval(record), ensure_ascii=False))
    stamp = date_id(when)
    return {
        f"samples_{names[task]}_{stamp}.jsonl": "".join(line + "\n" for line in task_lines).encode()
        for task, task_lines in lines.items()
    }
