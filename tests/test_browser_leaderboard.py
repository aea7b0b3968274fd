import csv

import pytest

from leaderboard.importing import import_reported
from tests.browser import chromium_page
from tests.factories import make_entry, make_run
from tests.test_browser_pages import SHOTS_DIR, WIDTHS, page_overflow, shoot

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
        # Sorting sorts within each size class: the 125M class comes first, best HellaSwag on top.
        assert first_names(page) != before
        assert page.locator("th[aria-sort='descending'] a[data-sort='hellaswag']").count() == 1
        assert "▼" in page.locator("th[aria-sort]").inner_text()
        sizes = page.locator("#leaderboard tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.size)"
        )
        assert sizes[0] == "125M" and sizes[-1] == "1.5B"
        # The link beside the count sorts across all classes.
        page.click("#sort-scope a")
        page.wait_for_url("**scope=all**")
        after = first_names(page)
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


def test_the_table_scrolls_in_its_card_and_its_headings_say_what_they_do(
    live_server, transactional_db, chromium_path
):
    import_reported()
    make_run(make_entry("Alpha-Demo"), benchmark="sample", ranked=False)
    make_run(make_entry("Beta-Demo"), benchmark="sample", ranked=False)
    url = live_server.url + "/?profile=iphone13-executorch-mps&sort=-avg"
    with chromium_page(chromium_path) as page:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(url)
            shoot(page, "leaderboard-profile")
            assert page_overflow(page) == 0
            wrap = page.locator("#leaderboard").locator("xpath=..")
            scrolls = wrap.evaluate("el => el.scrollWidth > el.clientWidth")
            # The whole table is reachable: scrolled inside its card when it is wider.
            wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
            if SHOTS_DIR:  # the table's top, scrolled to its last column, as a visitor sees it
                wrap.scroll_into_view_if_needed()
                page.screenshot(path=f"{SHOTS_DIR}/leaderboard-scrolled-{width}.png")
            card = wrap.bounding_box()
            source = page.locator("#leaderboard th.source").bounding_box()
            assert source["x"] + source["width"] <= card["x"] + card["width"] + 1
            assert scrolls == (width == 390)
            # Every filter control stays inside the filter card (a long profile name once
            # pushed the latency select past its right edge on a phone).
            form = page.locator("form.filters").bounding_box()
            rights = page.locator("form.filters select, form.filters input").evaluate_all(
                "els => els.map(e => e.getBoundingClientRect().right)"
            )
            assert max(rights) <= form["x"] + form["width"] + 1, width
        # The heading over the checkboxes is a label, not a sort control.
        pick = page.locator("#leaderboard th.pick")
        assert pick.inner_text() == "Compare" and pick.locator("a").count() == 0
        sorted_th = page.locator("#leaderboard th[aria-sort]")
        assert sorted_th.count() == 1 and sorted_th.get_attribute("aria-sort") == "descending"
        # The search box filters the "Not ranked" table too.
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(live_server.url + "/?q=alpha")
        unranked = page.locator("#unranked-table tbody td.name").all_inner_texts()
        assert unranked == ["Alpha-Demo"]
        assert page.errors == []
