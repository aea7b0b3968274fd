"""metric=headline|acc|acc_norm on / and its twins: measured runs switch, reported rows keep
the paper's number and say which metric it was stored under."""

import json

from django.db.models import F

from evaluator.tasks_spec import BY_KEY
from leaderboard.models import TaskScore
from tests.factories import make_entry, make_run
from tests.responses import body
from tests.test_leaderboard_pages import csv_rows


def add_metric(run, metric, value):
    for score in run.scores.filter(metric=F("task__headline_metric")).select_related("task"):
        if score.metric != metric:
            TaskScore.objects.create(
                run=run, task=score.task, metric=metric, value=value, stderr=0.02, n=100
            )


def rows_of(client, metric):
    data = json.loads(body(client.get("/leaderboard.json", {"metric": metric})))
    return data, {row["slug"]: row for row in data["rows"]}


def test_measured_runs_switch_metric_and_reported_rows_keep_the_papers(client, reported):
    run = make_run(make_entry("Switch", slug="switch"), dict.fromkeys(BY_KEY, 0.5))
    add_metric(run, "acc", 0.25)
    add_metric(run, "acc_norm", 0.75)

    data, rows = rows_of(client, "acc")
    assert data["filters"]["metric"] == "acc"
    assert {c["metric"] for c in data["columns"]} == {"acc"}
    switched = rows["switch"]
    # acc everywhere: the stored 0.25 where the headline is acc_norm, 0.5 where it is acc.
    for key, cell in switched["scores"].items():
        assert cell["metric"] == "acc"
        assert cell["value"] == (50.0 if BY_KEY[key].headline == "acc" else 25.0)
    assert switched["avg"]["value"] == round(
        sum(c["value"] for c in switched["scores"].values()) / 8, 2
    )
    paper = rows["mobilellm-125m"]
    assert paper["scores"]["hellaswag"] == {**paper["scores"]["hellaswag"], "metric": "acc_norm"}
    assert paper["scores"]["hellaswag"]["value"] == 38.9

    _, rows = rows_of(client, "acc_norm")
    assert rows["switch"]["scores"]["boolq"]["value"] == 75.0
    assert rows["switch"]["scores"]["hellaswag"]["value"] == 50.0
    _, rows = rows_of(client, "headline")
    assert rows["switch"]["avg"]["value"] == 50.0
    assert rows["mobilellm-125m"]["scores"]["hellaswag"]["value"] == 38.9


def test_the_page_and_the_csv_follow_the_switch(client, db):
    run = make_run(make_entry("Switch", slug="switch"), dict.fromkeys(BY_KEY, 0.5))
    add_metric(run, "acc", 0.25)
    html = body(client.get("/", {"metric": "acc"}))
    assert 'id="metric-notice"' in html and 'value="acc" checked' in html
    (row,) = csv_rows(client.get("/leaderboard.csv", {"metric": "acc"}))
    assert row["metric"] == "acc" and row["hellaswag"] == "25.0" and row["boolq"] == "50.0"
    # An unknown metric falls back to the headline one.
    data, _ = rows_of(client, "bleu")
    assert data["filters"]["metric"] == "headline"
