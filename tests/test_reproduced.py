"""The paper reproduced: a measured full-benchmark run of a mapped repo beside the paper's
row, per task and on average, on the model pages and /reproduced/ (and its JSON)."""

import csv
import io
import json

import pytest

from evaluator.tasks_spec import BY_KEY
from leaderboard import stats
from leaderboard.models import Entry
from tests.factories import make_entry, make_run
from tests.responses import body


@pytest.fixture
def measured_125m(reported):
    entry = make_entry(
        "MobileLLM-125M (measured)", slug="m125", source_url="facebook/MobileLLM-125M"
    )
    return make_run(entry, dict.fromkeys(BY_KEY, 0.40), benchmark="full")


def test_paper_rows_carry_their_repo_from_the_mapping(reported):
    assert Entry.objects.get(slug="mobilellm-125m").hub_id == "facebook/MobileLLM-125M"
    assert Entry.objects.exclude(hub_id="").filter(runs__paper_rows__table="Table 3").exists()


def test_a_measured_run_of_the_repo_is_compared_with_the_papers_row(client, measured_125m):
    data = json.loads(body(client.get("/reproduced.json")))
    (pair,) = data["pairs"]
    assert pair["slug"] == "mobilellm-125m" and pair["measured"]["slug"] == "m125"
    arc = next(t for t in pair["tasks"] if t["task"] == "arc_easy")
    assert arc["reported"]["value"] == 43.9 and arc["reported"]["n"] == 2376
    expected = stats.unpaired_diff(0.40, 0.01, 0.439, stats.binomial_stderr(0.439, 2376))
    assert arc["delta"] == pytest.approx(100 * expected.delta, abs=0.01)
    assert arc["ci95"][1] == pytest.approx(100 * expected.ci95[1], abs=0.01)
    assert arc["p_value"] == pytest.approx(expected.p_value, rel=1e-3)
    assert pair["avg"]["delta"] == pytest.approx(40.0 - 46.3, abs=0.06)
    # Both model pages show it, the paper's and the measured one's.
    for slug in ("mobilellm-125m", "m125"):
        html = body(client.get(f"/models/{slug}/"))
        assert 'id="reproduced"' in html and f"{arc['delta']:+.2f}".replace("-", "−") in html
    rows = list(csv.DictReader(io.StringIO(body(client.get("/reproduced.csv")))))
    assert [r["task"] for r in rows] == [*BY_KEY, "avg"]
    assert float(rows[0]["delta"]) == arc["delta"] and float(rows[0]["p_value"]) == arc["p_value"]
    assert float(rows[-1]["delta"]) == pair["avg"]["delta"]
    page = body(client.get("/reproduced/"))
    assert 'data-slug="mobilellm-125m"' in page
    assert 'id="reproduced-link"' in body(client.get("/"))


def test_an_average_only_row_is_compared_on_its_average(client, reported):
    entry = make_entry("R1 measured", slug="r1m", source_url="facebook/MobileLLM-R1-140M-base")
    make_run(entry, dict.fromkeys(BY_KEY, 0.5))
    data = json.loads(body(client.get("/models/mobilellm-r1-140m-base.json")))
    pair = data["reproduced"]
    assert all(t["delta"] is None for t in pair["tasks"])
    assert pair["avg"]["delta"] == pytest.approx(50.0 - 44.3, abs=0.01)
    assert "taken as exact" in pair["avg_method"]


def test_without_a_measured_run_there_is_nothing_to_show(client, reported):
    assert json.loads(body(client.get("/reproduced.json"))) == {"pairs": []}
    assert 'id="no-pairs"' in body(client.get("/reproduced/"))
    assert json.loads(body(client.get("/models/mobilellm-125m.json")))["reproduced"] is None
