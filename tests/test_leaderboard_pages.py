import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import make_entry, make_many, make_run
from tests.responses import body

PAPER_ORDER = ["ARC-e", "ARC-c", "BoolQ", "PIQA", "SIQA", "HellaSwag", "OBQA", "WinoGrande"]


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body(response))))


def test_the_leaderboard_shows_the_tasks_in_the_papers_order(client, reported):
    html = body(client.get("/"))
    positions = [html.index(f">{label}</a>") for label in PAPER_ORDER]
    assert positions == sorted(positions)
    assert "MobileLLM-LS-125M" in html and "Avg." in html


def test_best_and_second_best_are_marked_within_each_size_class(client, reported):
    data = json.loads(body(client.get("/leaderboard.json?size=125M")))
    by_name = {row["model"]: row for row in data["rows"]}
    assert by_name["MobileLLM-LS-125M"]["avg"]["mark"] == "best"
    assert by_name["MobileLLM-125M"]["avg"]["mark"] == "second"
    assert by_name["OPT-125M"]["avg"]["mark"] is None
    # BoolQ: Cerebras-GPT-111M (62.0) is best in the 125M class, GPT-neo-125M (61.3) second.
    assert by_name["Cerebras-GPT-111M"]["scores"]["boolq"]["mark"] == "best"
    assert by_name["GPT-neo-125M"]["scores"]["boolq"]["mark"] == "second"
    # Marks are per class: MobileLLM-1.5B is best of the 1.5B class, not of the 125M one.
    data = json.loads(body(client.get("/leaderboard.json?size=1.5B")))
    assert {r["model"] for r in data["rows"] if r["avg"]["mark"] == "best"} == {"MobileLLM-1.5B"}


def test_sorting_by_a_column_orders_the_rows(client, reported):
    # scope=all sorts across size classes (the default sorts within each: see below).
    rows = csv_rows(client.get("/leaderboard.csv?sort=-hellaswag&scope=all"))
    values = [float(r["hellaswag"]) for r in rows]
    assert values == sorted(values, reverse=True)
    assert rows[0]["model"] == "MobileLLM-1.5B"
    rows = csv_rows(client.get("/leaderboard.csv?sort=hellaswag&scope=all"))
    assert rows[0]["model"] == "Cerebras-GPT-111M"


def test_sorting_by_a_column_sorts_within_each_size_class_by_default(client, reported):
    rows = csv_rows(client.get("/leaderboard.csv?sort=-hellaswag"))
    classes = [r["size_class"] for r in rows]
    assert classes == sorted(classes, key=["125M", "350M", "600M", "1B", "1.5B"].index)
    for size in set(classes):
        values = [float(r["hellaswag"]) for r in rows if r["size_class"] == size]
        assert values == sorted(values, reverse=True)
    assert rows[0]["model"] != "MobileLLM-1.5B" and rows[-1]["size_class"] == "1.5B"


def test_filters_by_size_class_provenance_and_name(client, reported):
    entry = make_entry("Measured-Tiny", params=120_000_000)
    make_run(entry, {"arc_easy": 0.9})
    rows = csv_rows(client.get("/leaderboard.csv?size=125M"))
    assert {r["size_class"] for r in rows} == {"125M"}
    assert len(rows) == 10
    rows = csv_rows(client.get("/leaderboard.csv?provenance=measured"))
    assert [r["model"] for r in rows] == ["Measured-Tiny"]
    assert rows[0]["source"].startswith("measured: lm-eval 0.4.13")
    rows = csv_rows(client.get("/leaderboard.csv?q=mobilellm"))
    assert {r["model"] for r in rows} == {
        "MobileLLM-125M",
        "MobileLLM-LS-125M",
        "MobileLLM-350M",
        "MobileLLM-LS-350M",
        "MobileLLM-600M",
        "MobileLLM-1B",
        "MobileLLM-1.5B",
    }


def test_the_html_page_honours_the_same_filters(client, reported):
    html = body(client.get("/?size=350M&q=opt"))
    assert "OPT-350M" in html
    assert "OPT-125M" not in html and "OPT-1.3B" not in html


def test_ablation_rows_stay_off_the_ranked_leaderboard(client, reported):
    rows = csv_rows(client.get("/leaderboard.csv"))
    assert len(rows) == 41
    assert not [r for r in rows if "ablation" in r["model"].lower()]


def test_choosing_columns_limits_the_table_and_its_twins(client, reported):
    rows = csv_rows(client.get("/leaderboard.csv?cols=boolq,piqa"))
    assert "boolq" in rows[0] and "piqa" in rows[0] and "arc_easy" not in rows[0]
    data = json.loads(body(client.get("/leaderboard.json?cols=boolq&cols=piqa")))
    assert [c["key"] for c in data["columns"]] == ["boolq", "piqa"]


def test_csv_neutralises_cells_a_spreadsheet_would_run(client, db):
    make_run(make_entry('=HYPERLINK("http://x")', slug="formula"))
    make_run(make_entry("@SUM(A1)", slug="at-sum"))
    response = client.get("/leaderboard.csv")
    assert response["Content-Disposition"].startswith('attachment; filename="leaderboard-20')
    names = {r["model"] for r in csv_rows(response)}
    assert names == {'\'=HYPERLINK("http://x")', "'@SUM(A1)"}


def test_the_json_twin_has_the_documented_keys(client, reported):
    data = json.loads(body(client.get("/leaderboard.json")))
    assert set(data) >= {"generated", "suite", "filters", "columns", "count", "rows"}
    row = data["rows"][0]
    assert set(row) >= {
        "model",
        "slug",
        "url",
        "size_class",
        "params",
        "params_label",
        "layers",
        "provenance",
        "source",
        "benchmark",
        "avg",
        "scores",
    }
    assert set(row["scores"]["arc_easy"]) == {"value", "stderr", "n", "mark", "metric"}
    assert data["count"] == len(data["rows"]) == 41


def test_names_are_escaped_on_every_page(client, db):
    entry = make_entry("<script>alert(1)</script>", slug="xss")
    make_run(entry)
    for url in ["/", "/models/xss/"]:
        html = body(client.get(url))
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize(
    "url", ["/", "/leaderboard.csv", "/leaderboard.json", "/charts/accuracy-vs-params.json"]
)
def test_the_number_of_queries_does_not_grow_with_the_number_of_models(client, db, url, settings):
    settings.LEADERBOARD_PAGE_CACHE_S = 0  # measure the render, not the rendered-page cache

    def queries() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
            text = body(response)
        assert response.status_code == 200
        return len(captured), text

    make_many(10)
    queries()  # the first request builds the board
    few, _ = queries()
    make_many(10)
    rebuilt_few, _ = queries()  # the first request after a change rebuilds it
    make_many(980)
    rebuilt_many, _ = queries()
    many, text = queries()
    assert many == few
    assert rebuilt_many == rebuilt_few
    if url.endswith(".csv"):
        assert text.count("\n") == 1001


def test_the_chart_data_draws_the_pareto_front(client, reported):
    data = json.loads(body(client.get("/charts/accuracy-vs-params.json")))
    assert len(data["points"]) == 41
    front = [data["points"][i] for i in data["pareto"]]
    # The smallest model is on the front; MobileLLM-1.5B, the best of all, ends it.
    assert front[0]["slug"] == "cerebras-gpt-111m"
    assert front[-1]["slug"] == "mobilellm-15b"
    avgs = [p["avg"] for p in front]
    assert avgs == sorted(avgs)
    # No point is both no larger and more accurate than a point of the front.
    for f in front:
        assert not any(p["params"] <= f["params"] and p["avg"] > f["avg"] for p in data["points"])


def test_the_task_bars_come_from_json_for_the_picked_models(client, reported):
    data = json.loads(body(client.get("/charts/tasks.json?models=mobilellm-125m,opt-125m")))
    assert [t["label"] for t in data["tasks"]] == PAPER_ORDER
    series = {s["name"]: s["values"] for s in data["series"]}
    assert series["MobileLLM-125M"][0] == 43.9
    assert series["OPT-125M"][7] == 50.8
    response = client.get("/charts/tasks.json")
    assert response.status_code == 400 and "error" in json.loads(response.content)


def test_the_model_page_shows_scores_provenance_and_latency(client, reported):
    html = body(client.get("/models/mobilellm-125m/"))
    assert "MobileLLM paper Table 3" in html
    assert "43.90" in html  # ARC-e
    assert "1,361.7" in html  # Table 7 init
    data = json.loads(body(client.get("/models/mobilellm-125m.json")))
    assert data["layers"] == 30
    assert data["latency"][0]["execute_ms"] == 15.6
    assert client.get("/models/nope/").status_code == 404
    assert json.loads(client.get("/models/nope.json").content) == {
        "error": "no model with slug 'nope'"
    }


def test_the_paper_view_reproduces_table_3_exactly(client, reported):
    data = json.loads(body(client.get("/paper/table-3.json")))
    with open("leaderboard/data/mobilellm_csr_reported.csv") as fh:
        printed = [r for r in csv.DictReader(fh) if r["source"].endswith("Table 3")]
    assert [r["model"] for r in data["rows"]] == [r["model"] for r in printed]
    assert [r["group"] for r in data["rows"]] == ["125M"] * 9 + ["350M"] * 8
    for shown, row in zip(data["rows"], printed, strict=True):
        assert shown["scores"]["hellaswag"]["value"] == float(row["hellaswag"])
        assert shown["avg"]["value"] == float(row["avg"])
    html = body(client.get("/paper/table-3/"))
    assert (
        html.index("Cerebras-GPT-111M")
        < html.index("MobileLLM-LS-125M")
        < html.index("Cerebras-GPT-256M")
    )


def test_table_8_repeats_the_two_models_the_paper_prints_in_both_tables(client, reported):
    data = json.loads(body(client.get("/paper/table-8.json")))
    six_hundred = [r["model"] for r in data["rows"] if r["group"] == "600M"]
    assert "BLOOM-560M" in six_hundred and "MobileLLM-600M" in six_hundred
    assert client.get("/paper/no-such-table/").status_code == 404


def test_plotly_is_served_from_our_own_static_files(client, reported):
    html = body(client.get("/"))
    assert "/static/plotly/plotly.min.js" in html
    assert "cdn" not in html.lower()
