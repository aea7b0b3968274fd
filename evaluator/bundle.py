"""A reproducibility bundle for one measured run: a zip that re-runs with stock lm-eval.

Contents (README.md lists them): results.json in lm-eval's own results format, the
per-sample records per task (as `lm_eval --log_samples` writes them), the task yamls exactly
as run (ours `include` the stock ones: the stock files are shipped too, with their sha256),
the data files when the run read the
sample set or a directory, environment.json, and reproduce.sh + check_results.py, which run
`python -m lm_eval --model hf ...` and compare its numbers with results.json.

Django-free: leaderboard/bundles.py gathers the run from the database into a RunRecord.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from evaluator import datasource, samples_format
from evaluator.harness import SEEDS

HERE = Path(__file__).resolve().parent / "reproduce"
# Placeholders in the shipped yamls, replaced by check_results.py prepare on the machine
# that re-runs: the installed lm-eval's task folder, and the bundle's data folder.
STOCK = "@LM_EVAL_TASKS@"
DATA = "@BUNDLE_DATA@"
CPU_BATCH = 8


class BundleError(ValueError):
    """The run cannot be bundled so that it re-runs (say why)."""


@dataclass
class RunRecord:
    provenance: dict
    # lm-eval task name -> metric -> (value, stderr); fractions, as lm-eval reports them
    scores: dict[str, dict[str, tuple[float, float | None]]]
    n: dict[str, int]
    samples: list[dict] = field(default_factory=list)  # each with its task under "task"
    model_args: str = ""  # "pretrained=org/name,revision=<commit>" when pinned on the Hub


def _stock_root() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).resolve().parent / "tasks"


def _source(provenance: dict) -> datasource.DataSource:
    data = provenance.get("data") or {}
    kind = data.get("source")
    if kind == "sample":
        return datasource.resolve("sample")
    if kind == "dir" and data.get("root") and Path(data["root"]).is_dir():
        return datasource.resolve(data["root"])
    if kind == "hub":
        return datasource.resolve("hub")
    raise BundleError(f"the run's data ({kind or 'unknown'}) is no longer available here")


def _task_yaml(source, task: str, stock_rel: str) -> dict:
    """Our generated yaml for a local-data task, with placeholders for the two paths."""
    split = datasource.eval_split(task)
    cfg = {
        "include": f"{STOCK}/{stock_rel}",
        "task": source.run_name(task),
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: f"{DATA}/{task}/{split}.jsonl"}},
    }
    stock_cfg = datasource.stock_entry(task).cfg or {}
    for key in ("training_split", "validation_split", "test_split"):
        if stock_cfg.get(key) != split:
            cfg[key] = None
    return cfg


def build(record: RunRecord) -> bytes:
    """The bundle as zip bytes."""
    import yaml

    prov = record.provenance
    source = _source(prov)
    tasks = list(record.scores)
    stock_root = _stock_root()
    identity = (prov.get("data") or {}).get("tasks") or {}
    files: dict[str, bytes] = {}
    stock_files, configs, manifest_tasks = {}, {}, {}
    for task in tasks:
        stock_yaml = Path(datasource.stock_entry(task).yaml_path).resolve()
        # The stock folder's yamls and helpers: whatever the stock yaml includes or calls.
        for path in sorted(stock_yaml.parent.iterdir()):
            if path.suffix in (".yaml", ".py") and path.is_file():
                rel = path.relative_to(stock_root).as_posix()
                content = path.read_bytes()
                stock_files[rel] = hashlib.sha256(content).hexdigest()
                files[f"stock/{rel}"] = content
        name = source.run_name(task)
        if source.kind == "hub":
            configs[name] = {"task": task, "note": "stock task, data from the Hugging Face Hub",
                             "dataset": identity.get(task)}  # fmt: skip
            continue
        data = source.data_file(task).read_bytes()
        want = (identity.get(task) or {}).get("sha256")
        if want and hashlib.sha256(data).hexdigest() != want:
            raise BundleError(f"{task}: the data file changed since the run (sha256 differs)")
        split = datasource.eval_split(task)
        files[f"data/{task}/{split}.jsonl"] = data
        cfg = _task_yaml(source, task, stock_yaml.relative_to(stock_root).as_posix())
        configs[name] = cfg
        files[f"tasks/{name}.yaml"] = yaml.safe_dump(cfg, sort_keys=False).encode()
        manifest_tasks[name] = {"stock_task": task, "data_sha256": want}
    manifest = {"stock_placeholder": STOCK, "data_placeholder": DATA,
                "stock_files": stock_files, "tasks": manifest_tasks}  # fmt: skip
    files["tasks/manifest.json"] = _json(manifest)
    names = [source.run_name(t) for t in tasks]
    files["results.json"] = _json(_results(record, tasks, names, configs))
    files["environment.json"] = _json(_environment(prov))
    # Per-sample records as `lm_eval --log_samples` writes them, one file per task.
    when = prov.get("started_at")
    by_name = samples_format.files(record.samples, dict(zip(tasks, names, strict=True)), when)
    for file_name, content in by_name.items():
        files[f"samples/{file_name}"] = content
    files["check_results.py"] = (HERE / "check_results.py").read_bytes()
    files["reproduce.sh"] = _script(record, prov, names).encode()
    files["README.md"] = README.encode()
    return _zip(files)


def _results(record: RunRecord, tasks: list[str], names: list[str], configs: dict) -> dict:
    prov = record.provenance
    results, versions = {}, prov.get("task_versions") or {}
    for task, name in zip(tasks, names, strict=True):
        values = {"alias": name}
        for metric, (value, stderr) in record.scores[task].items():
            values[f"{metric},none"] = value
            values[f"{metric}_stderr,none"] = "N/A" if stderr is None else stderr
        results[name] = values
    return {
        "results": results,
        "versions": {n: versions.get(t) for t, n in zip(tasks, names, strict=True)},
        "n-shot": dict.fromkeys(names, 0),
        "n-samples": {
            n: {"original": record.n.get(t), "effective": record.n.get(t)}
            for t, n in zip(tasks, names, strict=True)
        },  # fmt: skip
        "configs": configs,  # ours as run (with the two path placeholders); stock/ has the rest
        "config": {
            "model": "hf",
            "model_args": record.model_args or "pretrained=<the checkpoint directory>",
            "batch_size": prov.get("batch_size"),
            "device": prov.get("device"),
            "dtype": prov.get("dtype"),
            "limit": prov.get("limit"),
            "random_seed": SEEDS["random"],
            "numpy_seed": SEEDS["numpy"],
            "torch_seed": SEEDS["torch"],
            "fewshot_seed": SEEDS["fewshot"],
        },
        "lm_eval_version": (prov.get("versions") or {}).get("lm_eval"),
    }


def _environment(prov: dict) -> dict:
    keys = ["versions", "hardware", "engine", "device", "dtype", "batch_size",
            "batch_sizes_detected", "seeds", "limit", "num_fewshot", "benchmark", "data",
            "project_version", "started_at", "wall_s"]  # fmt: skip
    return {key: prov.get(key) for key in keys if key in prov}


def _script(record: RunRecord, prov: dict, names: list[str]) -> str:
    batch = prov.get("batch_size")
    limit = prov.get("limit")
    values = {
        "@PINNED_MODEL_ARGS@": shlex.quote(record.model_args),
        "@DTYPE@": shlex.quote(str(prov.get("dtype") or "float32")),
        "@TASKS@": shlex.quote(",".join(names)),
        "@BATCH_SIZE@": str(batch) if isinstance(batch, int) else str(CPU_BATCH),
        "@LIMIT_ARGS@": f"--limit {limit}" if limit else "",
    }
    text = (HERE / "reproduce.sh").read_text()
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def _json(data) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n").encode()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            # Executable where it is meant to be run; the fixed date keeps the zip stable.
            info.external_attr = (0o755 if name.endswith(".sh") else 0o644) << 16
            zf.writestr(info, content)
    return buffer.getvalue()


README = """# Reproducibility bundle

- `results.json`: the run's numbers in lm-eval's own results format (`results`, `versions`,
  `n-shot`, `n-samples`, `configs`, `config`).
- `samples/samples_<task>_<date>.jsonl`: the per-sample records of each task, exactly as
  `lm_eval --log_samples` writes them.
- `tasks/*.yaml`: the task yamls as run; each `include`s a stock lm-eval yaml, shipped in
  `stock/` with its sha256 in `tasks/manifest.json`. `@LM_EVAL_TASKS@` and `@BUNDLE_DATA@`
  stand for lm-eval's task folder and this bundle's `data/`.
- `data/`: the data files, when the run read the sample set or a directory.
- `environment.json`: versions, hardware, engine, device, dtype, batch size, seeds.
- `reproduce.sh [MODEL_DIR]`: re-runs with stock lm-eval (`python -m lm_eval --model hf`) and
  prints OK when every metric matches results.json (within TOLERANCE, default 1e-4), else
  the differences. Batch size and device may change the last digits, not the outcome.
"""
