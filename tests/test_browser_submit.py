import pytest

from leaderboard.models import DeviceProfile, Submission
from tests.browser import chromium_page
from tests.workers import celery_worker

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_a_user_submits_watches_progress_and_finds_the_row(
    live_server, transactional_db, chromium_path, redis_url, served, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}"]  # that server only
    settings.EVAL_DATA = "sample"
    DeviceProfile.objects.filter(reported=False).update(active=False)
    with celery_worker(redis_url, tmp_path, "eval,default"), chromium_page(chromium_path) as page:
        page.goto(live_server.url + "/submit/")
        page.fill("#id_url", f"{served.url}/tiny.tar.gz")
        page.fill("#id_name", "Browser tiny")
        page.click("#submit-button")
        page.wait_for_url("**/submissions/*/")
        # The page follows the worker live: state, then the task being run, then done.
        page.wait_for_selector("#status.evaluating, #status.done", timeout=120_000)
        seen_task = page.locator("#task").inner_text()
        page.wait_for_selector("#status.done", timeout=300_000)
        assert page.locator("#percent").inner_text() == "100%"
        assert seen_task != "" and page.locator("#task").inner_text().startswith("winogrande")
        page.click("#model-link")
        page.wait_for_selector("text=Per-sample records")
        page.goto(live_server.url + "/")
        row = page.locator("#unranked-table tr", has_text="Browser tiny")
        assert row.count() == 1
        assert "sample set" in row.inner_text()
        assert page.errors == []
    assert Submission.objects.get().status == "done"
