"""The leaderboard's charts in Chromium at laptop and phone widths (issue 10, item 3)."""

import json
import re

import pytest

from leaderboard.importing import import_reported
from leaderboard.models import EvaluationRun
from leaderboard.suites import csr_suite
from tests.browser import chromium_page
from tests.factories import make_entry, make_run
from tests.responses import body
from tests.test_browser_pages import SHOTS_DIR, WIDTHS, page_overflow, shoot

pytestmark = pytest.mark.browser


def overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def board():
    """The paper's rows and one measured full-benchmark run (stderr known) among them."""
    import_reported()
    entry = make_entry("Measured tiny", params=130_000_000)
    # Below every paper row of its class: neither best nor second, so unnamed until picked.
    low = {key: 0.3 for key in csr_suite().tasks.values_list("key", flat=True)}
    make_run(entry, low, benchmark=EvaluationRun.Benchmark.FULL, ranked=True)
    return entry


def wait_for_charts(page):
    page.wait_for_selector("#chart-params.drawn .main-svg", timeout=20000)
    page.wait_for_selector("#chart-tasks.drawn .main-svg", timeout=20000)


def texts(page, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("els => els.map(e => e.textContent)")


def test_the_per_task_chart_plots_only_the_chosen_columns(
    live_server, transactional_db, chromium_path
):
    board()
    with chromium_page(chromium_path) as page:
        page.goto(live_server.url + "/?cols=arc_easy&cols=boolq")
        wait_for_charts(page)
        assert texts(page, "#chart-tasks .xtick text") == ["ARC-e", "BoolQ"]
        assert page.errors == []


def test_reported_bars_have_no_error_bars_and_measured_ones_do(
    live_server, transactional_db, chromium_path
):
    measured = board()
    with chromium_page(chromium_path) as page:
        page.goto(live_server.url + "/")
        wait_for_charts(page)
        page.check(f".pick-model[value='{measured.slug}']")
        page.check(".pick-model[value='mobilellm-125m']")
        page.click("#draw-bars")
        page.wait_for_function(
            "() => document.getElementById('chart-tasks').data.length == 2"
            " && document.querySelectorAll('#chart-tasks .trace.bars').length == 2"
        )
        caps = page.locator("#chart-tasks .trace.bars").evaluate_all(
            "ts => ts.map(t => t.querySelectorAll('path.yerror').length)"
        )
        names = page.evaluate("() => document.getElementById('chart-tasks').data.map(t => t.name)")
        by_name = dict(zip(names, caps, strict=True))
        assert by_name == {"Measured tiny (measured)": 8, "MobileLLM-125M": 0}
        assert page.errors == []


def test_the_log_axis_reads_in_model_sizes_and_legends_clear_the_axis_titles(
    live_server, transactional_db, chromium_path
):
    board()
    with chromium_page(chromium_path) as page:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + "/")
            wait_for_charts(page)
            page.locator("#chart-params").scroll_into_view_if_needed()
            shoot(page, "leaderboard")
            if SHOTS_DIR:  # the charts alone, at a size a person can read
                page.locator("section.charts").screenshot(
                    path=f"{SHOTS_DIR}/leaderboard-charts-{width}.png"
                )
            ticks = texts(page, "#chart-params .xtick text")
            assert ticks[:5] == ["125M", "350M", "600M", "1B", "1.5B"], width
            assert all(re.fullmatch(r"\d+(\.\d+)?[kMBT]", t) for t in ticks), ticks
            sizes = page.locator("#chart-params .xtick text").evaluate_all(
                "els => els.map(e => parseFloat(getComputedStyle(e).fontSize))"
            )
            assert min(sizes) >= 11
            for chart in ("#chart-params", "#chart-tasks"):
                legend = page.locator(f"{chart} .legend").bounding_box()
                for part in (".g-xtitle", ".g-ytitle", ".xtick", ".plot"):
                    for box in page.locator(f"{chart} {part}").all():
                        assert not overlap(legend, box.bounding_box()), (width, chart, part)
                # The legend stays inside its chart (not cut off above it).
                frame = page.locator(chart).bounding_box()
                assert legend["y"] >= frame["y"] and legend["x"] >= frame["x"] - 1
            assert page_overflow(page) == 0, width
        assert page.errors == []


def test_marked_and_picked_models_are_named_on_the_scatter_without_hovering(
    live_server, transactional_db, chromium_path, client
):
    measured = board()
    rows = json.loads(body(client.get("/leaderboard.json")))["rows"]
    marked = {r["model"] for r in rows if r["avg"]["mark"] in ("best", "second")}
    with chromium_page(chromium_path) as page:
        page.goto(live_server.url + "/")
        wait_for_charts(page)
        named = set(filter(None, texts(page, "#chart-params .textpoint")))
        assert named == marked and len(marked) >= 5
        # Ticking a row for comparison names its point at once.
        assert measured.name not in named
        page.check(f".pick-model[value='{measured.slug}']")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#chart-params .textpoint')]"
            f".some(e => e.textContent == '{measured.name}')"
        )
        assert page.errors == []


def test_the_favicon_is_served(live_server, transactional_db, chromium_path):
    with chromium_page(chromium_path) as page:
        response = page.goto(live_server.url + "/favicon.ico")
        assert response.status == 200
        assert response.headers["content-type"] in ("image/x-icon", "image/vnd.microsoft.icon")
