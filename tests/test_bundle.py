"""A measured run's reproducibility bundle, re-run with STOCK lm-eval by its reproduce.sh
(a tiny random model on the sample set: real lm-eval, real files, no network)."""

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from evaluator import harness
from evaluator.tinymodel import build_tiny_model
from leaderboard import pipeline
from leaderboard.models import Submission
from tests.factories import make_entry

pytestmark = pytest.mark.slow  # two evaluations of a tiny model: about a minute and a half

LM_EVAL_KEYS = {"results", "versions", "n-shot", "configs", "config"}


@pytest.fixture
def measured(db, settings, tmp_path):
    """A tiny model evaluated on the sample set (stock engine) and stored as the pipeline
    stores every run."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    model = build_tiny_model(tmp_path / "tiny")
    tasks = ["arc_easy", "boolq", "hellaswag"]  # a yaml that includes one, a helper module
    result = harness.evaluate(model, tasks=tasks, data="sample", device="cpu", engine="stock")
    sub = Submission.objects.create(
        url=str(model), source_kind="archive", checkpoint_key=str(model), name="tiny", secret="s"
    )
    entry = make_entry("Tiny", slug="tiny")
    return model, pipeline.store(sub, entry, result)


def run_script(bundle: Path, model: Path, out: Path) -> subprocess.CompletedProcess:
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env = {**os.environ, **offline, "PYTHON": sys.executable, "OUTPUT_DIR": str(out)}
    return subprocess.run(
        ["bash", str(bundle / "reproduce.sh"), str(model)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_bundle_re_runs_with_stock_lm_eval_and_prints_ok(client, measured, tmp_path):
    model, run = measured
    page = client.get("/models/tiny/").content.decode()
    url = f"/models/tiny/runs/{run.pk}/bundle.zip"
    assert f'href="{url}"' in page
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    bundle = tmp_path / "bundle"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        names = set(zf.namelist())
        zf.extractall(bundle)
    assert {"results.json", "environment.json", "reproduce.sh", "check_results.py"} <= names
    assert {"data/arc_easy/test.jsonl", "stock/arc/arc_easy.yaml", "stock/hellaswag/utils.py",
            "tasks/boolq_sample.yaml"} <= names  # fmt: skip
    results = json.loads((bundle / "results.json").read_text())
    assert set(results) >= LM_EVAL_KEYS
    assert results["results"]["arc_easy_sample"]["acc_norm,none"] == pytest.approx(
        run.scores.get(task__key="arc_easy", metric="acc_norm").value
    )
    environment = json.loads((bundle / "environment.json").read_text())
    assert environment["dtype"] == "float32" and environment["seeds"] == harness.SEEDS
    (boolq,) = (bundle / "samples").glob("samples_boolq_sample_*.jsonl")
    assert len(boolq.read_text().splitlines()) == 40

    out = tmp_path / "rerun"
    done = run_script(bundle, model, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("OK")
    # The per-sample records are exactly what stock `lm_eval --log_samples` wrote on the
    # re-run: one file per task, the same keys in the same order, the same JSON types, the
    # same documents, prompts and targets (log-likelihoods may differ in the last digits).
    for task in ("arc_easy_sample", "boolq_sample", "hellaswag_sample"):
        (ours,) = (bundle / "samples").glob(f"samples_{task}_*.jsonl")
        (stock,) = out.rglob(f"samples_{task}_*.jsonl")
        mine = [json.loads(line) for line in ours.read_text().splitlines()]
        theirs = [json.loads(line) for line in stock.read_text().splitlines()]
        assert len(mine) == len(theirs) == 40
        for a, b in zip(mine, theirs, strict=True):
            assert list(a) == list(b)
            assert {k: type(v) for k, v in a.items()} == {k: type(v) for k, v in b.items()}
            for key in ("doc_id", "doc", "target", "arguments", "doc_hash", "prompt_hash"):
                assert a[key] == b[key], key
            assert isinstance(a["arguments"]["gen_args_0"]["arg_0"], str)
            assert all(isinstance(x, str) for resp in a["resps"] for x in resp[0])
    response = client.get(f"/models/tiny/runs/{run.pk}/samples.zip")
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        assert sorted(n.split("_2")[0] for n in zf.namelist()) == [
            "samples_arc_easy_sample", "samples_boolq_sample", "samples_hellaswag_sample"
        ]  # fmt: skip
        assert zf.read(zf.namelist()[0]) == (
            next((bundle / "samples").glob("samples_arc_easy_sample_*")).read_bytes()
        )

    # The comparison can fail: a changed number is reported, with exit status 1.
    results["results"]["boolq_sample"]["acc,none"] += 0.025
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(results))
    check = subprocess.run(
        [sys.executable, str(bundle / "check_results.py"), "compare", str(tampered), str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 1 and "boolq_sample acc,none" in check.stdout
