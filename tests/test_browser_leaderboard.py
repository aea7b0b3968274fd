import csv

import pytest

from leaderboard.importing import import_reported
from tests.browser import chromium_page

pytestmark = pytest.mark.browser


def first_names(page, count=5):
    return page.locator("#leaderboard tbody td.name").all_inner_texts()[:count]


def test_a_visitor_sees_the_chart_sorts_filters_and_downloads(
    live_server, transactional_db, chromium_path, tmp_path
):
    import_reported()
    with chromium_page(chromium_path) as page:
        page.goto(live_server.url + "/")
        # The Plotly chart is drawn from its JSON twin, with the Pareto front.
        page.wait_for_selector("#chart-params.drawn .main-svg", timeout=20000)
        assert page.locator("#chart-params .scatterlayer .trace").count() >= 2
        page.wait_for_selector("#chart-tasks.drawn .main-svg", timeout=20000)

        before = first_names(page)
        page.click("th a[data-sort='hellaswag']")
        page.wait_for_url("**sort=-hellaswag**")
        after = first_names(page)
        assert after != before
        assert after[0] == "MobileLLM-1.5B"
        cells = page.locator("#leaderboard tbody tr").evaluate_all(
            "rows => rows.map(r => r.children[10].innerText.replace(/±.*/, ''))"
        )
        values = [float(v) for v in cells]
        assert values == sorted(values, reverse=True)

        page.check("input[name=size][value='125M']")
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**size=125M**")
        sizes = set(
            page.locator("#leaderboard tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.size)"
            )
        )
        assert sizes == {"125M"}
        assert page.locator("#leaderboard tbody tr").count() == 9

        with page.expect_download() as info:
            page.click("#download-csv")
        path = tmp_path / "board.csv"
        info.value.save_as(path)
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 9
        # The download keeps the sort and the filter the page shows.
        assert rows[0]["model"] == "MobileLLM-LS-125M"
        assert {r["size_class"] for r in rows} == {"125M"}
        assert page.errors == []
