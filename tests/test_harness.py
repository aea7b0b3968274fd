"""The lm-eval harness wrapper: metrics, labels, progress, cancellation, data sources.

Runs a 2-layer random-weight model on the shipped sample set; the numbers are noise, the
plumbing is what is tested. Parity with stock lm-eval is tests/test_parity.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from evaluator import datasource, harness
from evaluator.datasets_export import export
from evaluator.harness import HEADLINE, TASKS, Cancelled, evaluate
from evaluator.modeling import load_model
from evaluator.tinymodel import build_tiny_model

HAS_ACC_NORM = {"arc_easy", "arc_challenge", "piqa", "hellaswag", "openbookqa"}


def items(task: str, root: Path | None = None) -> list[dict]:
    path = datasource.resolve(str(root) if root else "sample").data_file(task)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module", autouse=True)
def fast_and_eager():
    # Report progress on every request; and a 64-wide model runs many times faster on one
    # thread than on several (thread start-up dominates).
    mp = pytest.MonkeyPatch()
    mp.setattr(harness, "POLL_INTERVAL_S", 0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    mp.undo()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def loaded(model_dir):
    return dict(zip(("model", "tokenizer"), load_model(model_dir, device="cpu"), strict=True))


@pytest.fixture(scope="module")
def sample_run(model_dir, loaded):
    events = []
    result = evaluate(model_dir, data="sample", progress=lambda *e: events.append(e), **loaded)
    return result, events


@pytest.fixture
def local_dir(tmp_path) -> Path:
    """A directory source: a copy of the sample set (same layout by design)."""
    return Path(shutil.copytree(datasource.SAMPLE_DIR, tmp_path / "data"))


def fake_hub_cache(cache: Path, task: str, rows: list[dict]) -> str:
    """Put `rows` into a datasets cache exactly where a Hub download of the task would be.

    Hub datasets are cached by the packaged builders as <namespace>___<name>/<config>/
    <version>/<commit>/<name>-<split>.arrow; building with the json builder and renaming
    the top folder gives that layout, so the loading code under test is the real one.
    """
    from datasets.packaged_modules.json.json import Json

    cfg = datasource.stock_entry(task).cfg
    namespace, name = cfg["dataset_path"].split("/")
    config = cfg.get("dataset_name") or "default"
    src = cache / f"{task}-src.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # Every split the stock task names exists on the Hub, and lm-eval opens them all.
    splits = {cfg[k] for k in ("training_split", "validation_split", "test_split") if cfg.get(k)}
    revision = "0123456789abcdef0123456789abcdef01234567"
    Json(
        cache_dir=str(cache), dataset_name=name, config_name=config, config_id=config,
        hash=revision, data_files={split: str(src) for split in splits},
    ).download_and_prepare()  # fmt: skip
    (cache / name).rename(cache / f"{namespace}___{name}")
    return revision


def test_it_reports_acc_with_stderr_and_n_for_every_task(sample_run):
    result, _ = sample_run
    assert [t.task for t in result.tasks] == TASKS
    for t in result.tasks:
        assert t.n == len(items(t.task)) >= 3
        expected = {"acc", "acc_norm"} if t.task in HAS_ACC_NORM else {"acc"}
        assert set(t.metrics) == expected, t.task
        for value, stderr in t.metrics.values():
            assert 0.0 <= value <= 1.0
            assert stderr is not None and stderr >= 0.0


def test_the_headline_is_acc_norm_exactly_where_the_task_has_it(sample_run):
    result, _ = sample_run
    for t in result.tasks:
        metric, value = t.headline
        assert metric == HEADLINE[t.task]
        assert metric == ("acc_norm" if t.task in HAS_ACC_NORM else "acc")
        assert value == t.metrics[metric][0]


def test_it_keeps_one_json_serialisable_record_per_sample(sample_run):
    result, _ = sample_run
    for t in result.tasks:
        assert [s["doc_id"] for s in t.samples] == list(range(t.n))
        for s in t.samples:
            assert {"doc", "target", "arguments", "resps", "filtered_resps", "acc"} <= set(s)
            assert all(isinstance(r[0][0], float) for r in s["resps"])
        json.dumps(t.samples)


def test_progress_walks_every_task_in_order_and_ends_at_one(sample_run):
    _, events = sample_run
    assert all(n == len(TASKS) and task == TASKS[i] for i, n, task, _ in events)
    steps = [(i, frac) for i, _, _, frac in events]
    assert steps == sorted(steps)
    assert {i for i, _ in steps} == set(range(len(TASKS)))
    assert events[-1] == (len(TASKS) - 1, len(TASKS), TASKS[-1], 1.0)
    assert any(0.0 < frac < 1.0 for _, frac in steps), "no progress within a task"


def test_a_sample_run_is_labelled_sample_with_file_hashes(sample_run):
    result, _ = sample_run
    prov = result.provenance
    assert prov["benchmark"] == "sample" and prov["limit"] is None
    assert prov["num_fewshot"] == 0 and prov["dtype"] == "float32" and prov["device"] == "cpu"
    assert prov["data"]["source"] == "sample"
    files = prov["data"]["tasks"]
    assert files["arc_easy"]["file"] == "arc_easy/test.jsonl"
    assert files["boolq"]["file"] == "boolq/validation.jsonl"
    assert all(len(files[t]["sha256"]) == 64 and files[t]["items"] == r.n
               for t, r in zip(TASKS, result.tasks, strict=True))  # fmt: skip
    assert set(prov["versions"]) == {"lm_eval", "transformers", "torch", "datasets"}
    assert prov["task_versions"]["boolq"] == 2.0


def test_a_limited_run_is_labelled_limited(model_dir, loaded, local_dir):
    result = evaluate(model_dir, tasks=["arc_easy", "boolq"], data=local_dir, limit=2, **loaded)
    assert result.provenance["benchmark"] == "limited"
    assert result.provenance["limit"] == 2
    assert [t.n for t in result.tasks] == [2, 2]


def test_a_directory_run_without_limit_counts_as_full(model_dir, loaded, local_dir):
    result = evaluate(model_dir, tasks=["winogrande"], data=local_dir, **loaded)
    assert result.provenance["benchmark"] == "full"
    assert result.provenance["data"] == {
        "source": "dir",
        "root": str(local_dir.resolve()),
        "tasks": {"winogrande": result.provenance["data"]["tasks"]["winogrande"]},
    }
    assert result.tasks[0].n == len(items("winogrande"))


def test_should_stop_before_the_model_loads_raises_cancelled(tmp_path):
    # A model directory that does not exist proves nothing was loaded.
    with pytest.raises(Cancelled):
        evaluate(tmp_path / "no-model", data="sample", should_stop=lambda: True)


def test_should_stop_within_a_task_raises_cancelled(model_dir, loaded, monkeypatch):
    # Every answered request polls (the tiny model answers a task in a fraction of the
    # throttle's interval); the first polls come before the task's requests start.
    monkeypatch.setattr(harness, "POLL_INTERVAL_S", 0.0)
    polls = []

    def should_stop():
        polls.append(1)
        return len(polls) > 10

    seen = []
    with pytest.raises(Cancelled):
        evaluate(model_dir, data="sample", should_stop=should_stop,
                 progress=lambda *e: seen.append(e), **loaded)  # fmt: skip
    assert seen[-1][2] == "arc_easy" and 0.0 < seen[-1][3] < 1.0


def test_samples_jsonl_gz_round_trips(sample_run, tmp_path):
    result, _ = sample_run
    path = tmp_path / "samples.jsonl.gz"
    harness.write_samples_jsonl_gz(result, path)
    back = harness.read_samples_jsonl_gz(path)
    assert len(back) == sum(t.n for t in result.tasks)
    by_task = {t.task: t.samples for t in result.tasks}
    for task in TASKS:
        mine = [{k: v for k, v in s.items() if k != "task"} for s in back if s["task"] == task]
        assert mine == by_task[task]


def test_a_missing_data_directory_is_a_clear_error(tmp_path):
    with pytest.raises(datasource.DataError, match="does not exist"):
        evaluate(tmp_path / "no-model", data=tmp_path / "nowhere")


def test_a_missing_task_file_names_the_file_and_split(tmp_path, local_dir):
    (local_dir / "openbookqa" / "test.jsonl").unlink()
    with pytest.raises(datasource.DataError, match=r"openbookqa/test\.jsonl.*'test' split"):
        evaluate(tmp_path / "no-model", data=local_dir)


def test_unknown_tasks_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown tasks"):
        evaluate(tmp_path / "no-model", tasks=["mmlu"])


def test_generated_yaml_changes_only_where_the_data_comes_from(local_dir, tmp_path):
    from lm_eval.tasks._yaml_loader import load_yaml

    source = datasource.resolve(local_dir)
    source.write_yamls(TASKS, tmp_path / "yamls")
    data_keys = {"task", "dataset_path", "dataset_name", "dataset_kwargs"}
    for task in TASKS:
        path = tmp_path / "yamls" / f"{task}_local.yaml"
        raw = yaml.safe_load(path.read_text())
        assert raw["include"] == str(datasource.stock_entry(task).yaml_path)
        split = datasource.eval_split(task)
        assert raw["dataset_kwargs"] == {"data_files": {split: str(source.data_file(task))}}
        merged = load_yaml(path, resolve_func=False)
        stock = load_yaml(raw["include"], resolve_func=False)
        changed = {k for k in merged.keys() | stock.keys() if merged.get(k) != stock.get(k)}
        assert changed - data_keys <= {"training_split", "validation_split"}, task
        assert merged.get(f"{'test' if split == 'test' else 'validation'}_split") == split


def test_the_hub_source_runs_stock_tasks_and_records_the_dataset_revision(
    model_dir, loaded, tmp_path, monkeypatch
):
    import datasets

    revision = fake_hub_cache(tmp_path, "arc_easy", items("arc_easy"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path))
    result = evaluate(model_dir, tasks=["arc_easy"], data="hub", **loaded)
    prov = result.provenance
    assert prov["benchmark"] == "full" and prov["data"]["source"] == "hub"
    ident = prov["data"]["tasks"]["arc_easy"]
    assert ident["path"] == "allenai/ai2_arc" and ident["name"] == "ARC-Easy"
    assert ident["split"] == "test" and ident["revision"] == revision
    assert ident["fingerprint"] and ident["items"] == result.tasks[0].n == len(items("arc_easy"))


def test_export_writes_the_scored_split_from_a_datasets_cache(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    cache.mkdir()
    for task in ("arc_challenge", "winogrande"):
        fake_hub_cache(cache, task, items(task))
    written = export(["arc_challenge", "winogrande"], out, cache_dir=cache)
    assert written["winogrande"]["items"] == len(items("winogrande"))
    datasource.resolve(out).check(["arc_challenge", "winogrande"])
    for task in ("arc_challenge", "winogrande"):
        assert items(task, out) == items(task)
    assert not list(out.rglob("*.partial"))


def test_the_seeds_are_lm_evals_defaults():
    from lm_eval.defaults import DEFAULT_OTHER_SEED, DEFAULT_RANDOM_SEED

    assert harness.SEEDS == {
        "random": DEFAULT_RANDOM_SEED,
        "numpy": DEFAULT_OTHER_SEED,
        "torch": DEFAULT_OTHER_SEED,
        "fewshot": DEFAULT_OTHER_SEED,
    }


def test_the_cli_prints_a_table_and_writes_json(model_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert harness.main([str(model_dir), "--tasks", "boolq", "--limit", "3",
                         "--json", str(out)]) == 0  # fmt: skip
    assert "boolq" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["provenance"]["benchmark"] == "sample"
    assert doc["tasks"][0]["n"] == 3 and "acc" in doc["tasks"][0]["metrics"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_it_picks_cuda_and_an_automatic_batch_size_when_there_is_a_gpu(model_dir):
    result = evaluate(model_dir, tasks=["piqa"], data="sample")
    assert result.provenance["device"].startswith("cuda")
    assert result.provenance["batch_size"] == "auto"
