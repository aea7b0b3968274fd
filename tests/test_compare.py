"""/compare/ and its twins: paired statistics from per-sample records, unpaired against
reported rows, on a real database over real HTTP (Django's test client)."""

import csv
import io
import json

import pytest

from leaderboard import stats
from tests.factories import make_entry, make_measured
from tests.responses import body

# ARC-e: 10 documents; A and B agree on 6 (4 both right, 2 both wrong); A alone is right on
# 3, B alone on 1. McNemar on 3 / 1: 2 · P(X ≤ 1 | Bin(4, ½)) = 2 · 5/16 = 0.625.
A_ARC = [1, 1, 1, 1, 0, 0, 1, 1, 1, 0]
B_ARC = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]


@pytest.fixture
def pair(db, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    a = make_entry("Alpha", slug="alpha")
    b = make_entry("Beta", slug="beta")
    make_measured(a, {"arc_easy": A_ARC})
    make_measured(b, {"arc_easy": B_ARC})
    return a, b


def get_json(client, url):
    response = client.get(url)
    return response.status_code, json.loads(body(response))


def test_two_measured_runs_on_the_same_data_are_paired_per_document(client, pair):
    status, data = get_json(client, "/compare.json?models=alpha,beta")
    assert status == 200
    assert set(data) == {"models", "tasks", "avg"}
    arc = next(t for t in data["tasks"] if t["task"] == "arc_easy")
    assert arc["metric"] == "acc_norm"
    assert arc["values"]["alpha"] == {
        "value": 70.0,
        "stderr": pytest.approx(15.275, abs=0.01),
        "n": 10,
    }
    (diff,) = arc["diffs"]
    assert set(diff) == {"a", "b", "delta", "ci95", "p_value", "paired", "n_paired", "agreement"}
    assert diff["paired"] is True and diff["n_paired"] == 10
    assert diff["agreement"] == {"both_right": 4, "only_a": 3, "only_b": 1, "both_wrong": 2}
    assert diff["delta"] == pytest.approx(20.0)
    assert diff["p_value"] == pytest.approx(0.625)
    low, high = diff["ci95"]
    assert low <= 20.0 <= high
    # A task without per-sample records is compared unpaired, and says so.
    boolq = next(t for t in data["tasks"] if t["task"] == "boolq")
    assert boolq["diffs"][0]["paired"] is False and boolq["diffs"][0]["agreement"] is None
    # The average mixes both: unpaired, from the tasks' differences.
    avg = data["avg"]["diffs"][0]
    assert avg["paired"] is False
    assert avg["delta"] == pytest.approx(20.0 / 8)


def test_runs_on_different_data_are_not_paired(client, db, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    make_measured(make_entry("Alpha", slug="alpha"), {"arc_easy": A_ARC})
    make_measured(make_entry("Beta", slug="beta"), {"arc_easy": B_ARC}, data_sha="other-files")
    _, data = get_json(client, "/compare.json?models=alpha,beta")
    arc = next(t for t in data["tasks"] if t["task"] == "arc_easy")
    assert arc["diffs"][0]["paired"] is False
    assert arc["diffs"][0]["agreement"] is None and arc["diffs"][0]["n_paired"] is None


def test_a_reported_row_is_compared_unpaired_on_binomial_stderrs(client, reported, pair):
    status, data = get_json(client, "/compare.json?models=alpha,mobilellm-125m")
    assert status == 200
    hella = next(t for t in data["tasks"] if t["task"] == "hellaswag")
    paper = hella["values"]["mobilellm-125m"]
    # The paper prints 38.9 without an error: sqrt(p(1-p)/n) on HellaSwag's 10,042 documents.
    assert paper["n"] == 10042
    assert paper["stderr"] == pytest.approx(100 * stats.binomial_stderr(0.389, 10042), abs=0.01)
    diff = hella["diffs"][0]
    assert diff["paired"] is False and diff["agreement"] is None
    expected = stats.unpaired_diff(0.5, 0.01, 0.389, stats.binomial_stderr(0.389, 10042))
    assert diff["delta"] == pytest.approx(100 * expected.delta, abs=0.01)
    assert diff["p_value"] == pytest.approx(expected.p_value, rel=1e-3)
    assert diff["ci95"][0] == pytest.approx(100 * expected.ci95[0], abs=0.01)


def test_the_csv_has_one_row_per_task_and_pair_and_equals_the_json(client, pair):
    make_measured(make_entry("Gamma", slug="gamma"), {"arc_easy": A_ARC[::-1]})
    _, data = get_json(client, "/compare.json?models=alpha,beta,gamma")
    rows = list(
        csv.DictReader(io.StringIO(body(client.get("/compare.csv?models=alpha,beta,gamma"))))
    )
    assert len(rows) == (8 + 1) * 2
    for row in rows:
        item = (
            data["avg"]
            if row["task"] == "avg"
            else next(t for t in data["tasks"] if t["task"] == row["task"])
        )
        diff = next(d for d in item["diffs"] if d["b"] == row["b"])
        assert row["a"] == "alpha"
        assert float(row["delta"]) == diff["delta"]
        assert row["paired"] == str(diff["paired"])


def test_the_page_shows_the_json_numbers_and_the_disagreements(client, pair):
    _, data = get_json(client, "/compare.json?models=alpha,beta")
    html = body(client.get("/compare/?models=alpha&models=beta"))
    arc = next(t for t in data["tasks"] if t["task"] == "arc_easy")
    diff = arc["diffs"][0]
    assert f"+{diff['delta']:.2f}" in html
    assert f"p={diff['p_value']}" in html
    assert "both right 4, only Alpha 3, only Beta 1, both wrong 2" in html
    # The four documents where they disagree, each with its prompt and both choices.
    for doc in (6, 7, 8, 9):
        assert f"arc_easy question {doc}?" in html
        assert f"right answer {doc}" in html and f"wrong answer {doc}" in html
    assert "arc_easy question 0?" not in html


@pytest.mark.parametrize(
    ("query", "status"),
    [("models=alpha", 400), ("models=a,b,c,d,e", 400), ("models=alpha,nobody", 404),
     ("models=alpha,beta&metric=bleu", 400)],
)  # fmt: skip
def test_bad_requests_are_refused_with_a_reason(client, pair, query, status):
    for url in (f"/compare.json?{query}", f"/compare/?{query}"):
        response = client.get(url)
        assert response.status_code == status
    assert "error" in json.loads(body(client.get(f"/compare.json?{query}")))


def test_a_lost_per_sample_file_makes_the_comparison_unpaired(client, pair):
    from pathlib import Path

    beta = pair[1].runs.get()
    Path(beta.samples_file.path).unlink()
    response = client.get("/compare.json?models=alpha,beta")
    assert response.status_code == 200
    arc = next(t for t in json.loads(body(response))["tasks"] if t["task"] == "arc_easy")
    assert arc["diffs"][0]["paired"] is False
