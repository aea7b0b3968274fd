"""Rank and 95 % rank range on the leaderboard, within size classes, in HTML, CSV and JSON;
the paper's tables get none."""

import json

import pytest

from evaluator.tasks_spec import BY_KEY
from leaderboard import stats
from tests.factories import make_entry, make_run
from tests.responses import body
from tests.test_leaderboard_pages import csv_rows


def board(client, **query):
    data = json.loads(body(client.get("/leaderboard.json", query)))
    return {row["slug"]: row for row in data["rows"]}


@pytest.fixture
def three(db):
    # Every task at the same value and stderr 1 %: each average's stderr is sqrt(8)/8 %.
    # 60.0 and 59.8 overlap (0.2 < 2 · 1.96 · 0.354); 50.0 is far below both.
    for slug, value in [("top", 0.60), ("close", 0.598), ("far", 0.50)]:
        make_run(make_entry(slug, slug=slug), dict.fromkeys(BY_KEY, value))
    make_run(make_entry("big", slug="big", params=500_000_000), dict.fromkeys(BY_KEY, 0.3))


def test_tied_rows_share_a_range_and_a_separated_row_does_not(client, three):
    rows = board(client)
    assert rows["top"]["rank"] == 1 and rows["top"]["rank_range"] == [1, 2]
    assert rows["close"]["rank"] == 2 and rows["close"]["rank_range"] == [1, 2]
    assert rows["far"]["rank"] == 3 and rows["far"]["rank_range"] == [3, 3]
    # Another size class is ranked on its own.
    assert rows["big"]["rank"] == 1 and rows["big"]["rank_range"] == [1, 1]
    assert rows["top"]["avg"]["stderr"] == pytest.approx(100 * 0.01 * 8**0.5 / 8, abs=0.01)


def test_the_csv_and_the_page_show_the_same_ranges(client, three):
    by_slug = {r["slug"]: r for r in csv_rows(client.get("/leaderboard.csv"))}
    assert (by_slug["close"]["rank"], by_slug["close"]["rank_range"]) == ("2", "1–2")
    assert (by_slug["far"]["rank_best"], by_slug["far"]["rank_worst"]) == ("3", "3")
    html = body(client.get("/"))
    assert 'id="rank-method"' in html
    row = html[html.index('data-slug="close"') :]
    row = row[: row.index("</tr>")]
    assert '<td class="num rank tied"' in row and ">1–2</td>" in row


def test_ranks_stay_within_the_class_when_the_table_is_filtered(client, three):
    rows = board(client, q="far")
    assert list(rows) == ["far"] and rows["far"]["rank_range"] == [3, 3]


def test_a_reported_row_gets_a_binomial_standard_error_for_its_average(client, reported):
    rows = board(client)
    paper = rows["mobilellm-125m"]
    ses = [
        stats.binomial_stderr(paper["scores"][key]["value"] / 100, BY_KEY[key].full_n)
        for key in paper["scores"]
    ]
    assert paper["avg"]["stderr"] == pytest.approx(100 * stats.mean_stderr(ses), abs=0.01)
    assert paper["rank"] >= 1 and paper["rank_range"][0] <= paper["rank"]
    assert paper["rank"] <= paper["rank_range"][1]


def test_the_paper_view_has_no_ranks(client, reported):
    data = json.loads(body(client.get("/paper/table-3.json")))
    assert "rank" not in data["rows"][0] and data["rows"][0]["avg"]["stderr"] is None
    header = body(client.get("/paper/table-3.csv")).splitlines()[0]
    assert "rank" not in header
