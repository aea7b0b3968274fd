"""A visitor ticks two rows on the leaderboard, compares them and reads where they disagree
(Playwright on Debian's Chromium, against the live server and the real database)."""

import pytest

from leaderboard.importing import import_reported
from tests.browser import chromium_page
from tests.factories import make_entry, make_measured
from tests.test_compare import A_ARC, B_ARC

pytestmark = pytest.mark.browser


def test_a_visitor_compares_two_selected_rows_and_sees_the_disagreements(
    live_server, transactional_db, chromium_path, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    import_reported()
    make_measured(make_entry("Alpha", slug="alpha"), {"arc_easy": A_ARC})
    make_measured(make_entry("Beta", slug="beta"), {"arc_easy": B_ARC})
    with chromium_page(chromium_path) as page:
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(live_server.url + "/?size=125M")
        # Paired runs overlap, so the two are tied; the paper's rows carry ranges as well.
        assert page.locator("tr[data-slug=alpha] td.rank").inner_text() == "1–2"
        page.screenshot(path=str(tmp_path / "board-1366.png"))
        # The R1 averages stand apart, labelled, with their contamination flags.
        elsewhere = page.locator("#reported-elsewhere")
        assert "average only" in elsewhere.inner_text()
        assert elsewhere.locator(".badge.contaminated").count() == 1  # 125M: R1-140M only
        elsewhere.screenshot(path=str(tmp_path / "elsewhere-1366.png"))
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(tmp_path / "board-390.png"))
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(live_server.url + "/?q=a")
        page.check("tr[data-slug=alpha] input.pick-model")
        page.check("tr[data-slug=beta] input.pick-model")
        page.click("#compare-selected")
        page.wait_for_url("**/compare/?models=alpha&models=beta")
        arc = page.locator("#compare tr[data-task=arc_easy]")
        assert "paired" in arc.inner_text() and "+20.00" in arc.inner_text()
        assert "unpaired" in page.locator("#compare tr[data-task=boolq]").inner_text()

        details = page.locator("#disagree-arc_easy-beta")
        assert not details.locator("table").is_visible()
        details.locator("summary").click()
        rows = details.locator("tbody tr")
        assert rows.count() == 4
        first = rows.nth(0).inner_text()
        assert "arc_easy question 6?" in first and "right answer 6" in first
        assert "wrong answer 6" in first
        page.set_viewport_size({"width": 1366, "height": 900})
        page.screenshot(path=str(tmp_path / "compare-1366.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(tmp_path / "compare-390.png"), full_page=True)

        # The per-sample records the list points to are one click away.
        link = page.locator("#models-samples + ul a").first
        response = page.request.get(live_server.url + link.get_attribute("href"))
        assert response.status == 200
        assert page.errors == []


def test_a_visitor_reads_measured_against_reported(
    live_server, transactional_db, chromium_path, tmp_path
):
    from evaluator.tasks_spec import BY_KEY
    from tests.factories import make_run

    import_reported()
    entry = make_entry("MobileLLM-125M ours", slug="m125", source_url="facebook/MobileLLM-125M")
    make_run(entry, dict.fromkeys(BY_KEY, 0.40))
    with chromium_page(chromium_path) as page:
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(live_server.url + "/")
        page.click("#reproduced-link")
        page.wait_for_url("**/reproduced/")
        table = page.locator(".reproduced[data-slug=mobilellm-125m]")
        assert "−3.90" in table.locator("tr[data-task=arc_easy]").inner_text()
        page.screenshot(path=str(tmp_path / "reproduced-1366.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(tmp_path / "reproduced-390.png"), full_page=True)
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(live_server.url + "/models/mobilellm-r1-140m-base/")
        assert "contaminated: obqa" in page.locator(".facts").inner_text()
        assert "average only" in page.locator("h2 .badge.warn").inner_text()
        page.screenshot(path=str(tmp_path / "model-r1-1366.png"), full_page=True)
        page.goto(live_server.url + "/models/m125/")
        assert page.locator("#reproduced").is_visible()
        page.screenshot(path=str(tmp_path / "model-m125-1366.png"), full_page=True)
        assert page.errors == []
