"""Where the evaluation data comes from: the Hugging Face Hub, the sample set, or a directory.

Prompts always come from lm-eval's own task definitions. For the sample set and for a local
directory (same layout: DIR/<task>/<split>.jsonl) we generate, at run time, one task yaml per
task that `include`s the stock yaml and overrides only where the data is read from. The
generated task is named `<task>_sample` or `<task>_local` so that logs stay readable, and
the harness maps results back to the stock name.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator import tasks_spec

SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "sample"
SUFFIXES = {"sample": "_sample", "dir": "_local"}
_SPLIT_KEYS = ("training_split", "validation_split", "test_split")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


class DataError(FileNotFoundError):
    """The configured evaluation data is missing or unusable."""


@functools.lru_cache(maxsize=1)
def stock_task_manager():
    """lm-eval's TaskManager over the stock directories of the suite's tasks.

    Indexing all of lm-eval's ~14,700 task yamls takes 5-7 s per process (a fixed cost of
    every evaluation in a fresh process, and of every worker start); the suite's seven
    directories take milliseconds and yield the same entries (tests/test_tasks_spec.py
    compares them with the full index). Should lm-eval move a directory, the full index
    is used instead."""
    from lm_eval import tasks as lm_tasks

    root = Path(lm_tasks.__file__).resolve().parent
    dirs = sorted({str(root / t.lm_eval_dir) for t in tasks_spec.TASKS})
    if all(Path(d).is_dir() for d in dirs):
        manager = lm_tasks.TaskManager(include_path=dirs, include_defaults=False)
        if all(name in manager.task_index for name in tasks_spec.HARNESS_TASKS):
            return manager
    return full_task_manager()


@functools.lru_cache(maxsize=1)
def full_task_manager():
    """lm-eval's TaskManager over all its built-in tasks (seconds to build, so once)."""
    from lm_eval.tasks import TaskManager

    return TaskManager()


def stock_entry(task: str):
    entry = stock_task_manager().task_index.get(task)
    if entry is None:  # not one of the suite's tasks
        entry = full_task_manager().task_index.get(task)
    if entry is None or entry.yaml_path is None:
        raise KeyError(f"lm-eval {_lm_eval_version()} has no task named {task!r}")
    return entry


def eval_split(task: str) -> str:
    """The split the stock task scores on: lm-eval uses test when it is set, else validation."""
    cfg = stock_entry(task).cfg or {}
    split = cfg.get("test_split") or cfg.get("validation_split")
    if not split:
        raise KeyError(f"lm-eval task {task!r} has neither a test nor a validation split")
    return split


@dataclass(frozen=True)
class DataSource:
    kind: str  # "hub" | "sample" | "dir"
    root: Path | None = None

    def run_name(self, task: str) -> str:
        return task + SUFFIXES.get(self.kind, "")

    def data_file(self, task: str) -> Path:
        assert self.root is not None
        return self.root / task / f"{eval_split(task)}.jsonl"

    def check(self, tasks: list[str]) -> None:
        """Fail before any model is loaded if a data file is missing or empty."""
        if self.kind == "hub":
            return
        if not self.root.is_dir():
            raise DataError(f"evaluation data directory {self.root} does not exist")
        for task in tasks:
            path = self.data_file(task)
            if not path.is_file():
                raise DataError(
                    f"{path} is missing: a data directory holds <task>/<split>.jsonl for "
                    f"every task, and {task} is scored on its {eval_split(task)!r} split"
                )
            if path.stat().st_size == 0:
                raise DataError(f"{path} is empty")

    def write_yamls(self, tasks: list[str], out_dir: str | Path) -> Path:
        """Write one task yaml per task into out_dir (an lm-eval --include_path)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for task in tasks:
            (out / f"{self.run_name(task)}.yaml").write_text(self.task_yaml(task))
        return out

    def task_yaml(self, task: str) -> str:
        import yaml

        split = eval_split(task)
        cfg: dict[str, Any] = {
            "include": str(stock_entry(task).yaml_path),
            "task": self.run_name(task),
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(self.data_file(task).resolve())}},
        }
        # Only the scored split is shipped; a split left set would make lm-eval look it up
        # (for few-shot docs) and fail. At zero shots no other split is read anyway.
        for key in _SPLIT_KEYS:
            if (stock_entry(task).cfg or {}).get(key) != split:
                cfg[key] = None
        header = f"# Generated: stock lm-eval task {task!r}, data read from a local file.\n"
        return header + yaml.safe_dump(cfg, sort_keys=False)

    def task_manager(self, workdir: str | Path):
        """A TaskManager that knows the tasks this source runs (workdir: for generated yamls)."""
        if self.kind == "hub":
            return stock_task_manager()
        from lm_eval.tasks import TaskManager

        return TaskManager(include_path=str(workdir), include_defaults=False)

    def identity(self, task: str, task_obj=None) -> dict[str, Any]:
        """What exactly was read, for provenance: file hashes, or the Hub dataset and cache."""
        split = eval_split(task)
        if self.kind != "hub":
            path = self.data_file(task)
            data = path.read_bytes()
            return {
                "file": str(path.relative_to(self.root)),
                "split": split,
                "sha256": hashlib.sha256(data).hexdigest(),
                "items": sum(1 for line in data.splitlines() if line.strip()),
            }
        cfg = stock_entry(task).cfg or {}
        ident: dict[str, Any] = {
            "path": cfg.get("dataset_path"),
            "name": cfg.get("dataset_name"),
            "split": split,
        }
        if task_obj is not None:
            ident.update(dataset_fingerprint(task_obj.dataset[split]))
        return ident

    def describe(self) -> dict[str, Any]:
        return {"source": self.kind, "root": str(self.root) if self.root else None}


def dataset_fingerprint(ds) -> dict[str, Any]:
    """The datasets fingerprint, and the Hub commit when the cache path carries one."""
    out: dict[str, Any] = {"fingerprint": getattr(ds, "_fingerprint", None), "items": len(ds)}
    # Hub downloads are cached under .../<config>/<version>/<commit sha>/<file>.arrow.
    for cached in getattr(ds, "cache_files", None) or []:
        parent = Path(cached.get("filename", "")).parent.name
        if _HEX40.match(parent):
            out["revision"] = parent
            break
    return out


def resolve(data: str | Path) -> DataSource:
    """Turn the EVAL_DATA setting ("hub", "sample" or a directory path) into a DataSource."""
    if str(data) == "hub":
        return DataSource("hub")
    if str(data) == "sample":
        return DataSource("sample", SAMPLE_DIR)
    return DataSource("dir", Path(data).expanduser().resolve())


def _lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")
