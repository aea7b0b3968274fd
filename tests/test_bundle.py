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
            "samples/hellaswag_sample.jsonl", "tasks/boolq_sample.yaml"} <= names  # fmt: skip
    results = json.loads((bundle / "results.json").read_text())
    assert set(results) >= LM_EVAL_KEYS
    assert results["results"]["arc_easy_sample"]["acc_norm,none"] == pytest.approx(
        run.scores.get(task__key="arc_easy", metric="acc_norm").value
    )
    environment = json.loads((bundle / "environment.json").read_text())
    assert environment["dtype"] == "float32" and environment["seeds"] == harness.SEEDS
    samples = (bundle / "samples/boolq_sample.jsonl").read_text().splitlines()
    assert len(samples) == 40

    out = tmp_path / "rerun"
    done = run_script(bundle, model, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("OK")
    # The comparison can fail: a changed number is reported, with exit status 1.
    results["results"]["boolq_sample"]["acc,none"] += 0.025
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(results))
    check = subprocess.run(
        [sys.executable, str(bundle / "check_results.py"), "compare", str(tampered), str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 1 and "boolq_sample acc,none" in check.stdout
