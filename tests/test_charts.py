"""Chart data for `/` (issue 10, item 3): readable log ticks, chosen columns, the favicon."""

from leaderboard import charts
from tests.factories import make_entry, make_run


def test_the_log_axis_is_labelled_with_the_size_classes_within_the_data():
    ticks = charts.log_ticks([125e6, 350e6, 1.1e9, 1.5e9])
    assert [t["label"] for t in ticks] == ["125M", "350M", "600M", "1B", "1.5B"]
    assert ticks[0]["value"] == 125e6
    # Larger models than the classes name get a tick of their own, clear of 1.5B.
    wider = charts.log_ticks([125e6, 1.5e9, 3.2e9])
    assert [t["label"] for t in wider] == ["125M", "350M", "600M", "1B", "1.5B", "3B"]


def test_tiny_models_get_a_one_two_five_ladder_in_words():
    ticks = charts.log_ticks([150e3, 4e6])
    assert [t["label"] for t in ticks] == ["200k", "500k", "1M", "2M", "5M"]
    low, high = charts.log_range([150e3, 4e6], [t["value"] for t in ticks])
    assert low < 5.18 and high > 6.7  # every point and tick inside


def test_the_per_task_chart_takes_the_tables_chosen_columns(client, reported):
    make_run(make_entry("Measured tiny", params=130_000_000), {"boolq": 0.7})
    data = client.get("/charts/tasks.json?models=mobilellm-125m&cols=arc_easy,boolq").json()
    assert [t["key"] for t in data["tasks"]] == ["arc_easy", "boolq"]
    assert len(data["series"][0]["values"]) == 2
    everything = client.get("/charts/tasks.json?models=mobilellm-125m").json()
    assert len(everything["tasks"]) == 8


def test_reported_scores_have_no_stderr_to_draw(client, reported):
    data = client.get("/charts/tasks.json?models=mobilellm-125m").json()
    assert data["series"][0]["stderr"] == [None] * 8


def test_the_favicon_is_an_icon_of_our_own_under_the_csp(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert b"".join(response.streaming_content)[:4] == b"\0\0\1\0"  # an ICO header
    assert "default-src 'self'" in response["Content-Security-Policy"]
