"""The quantization ladder in Chromium at desktop and phone widths: the model page's ladder
and /quantization/'s chart and table, from a real four-precision evaluation."""

import pytest
import torch

from leaderboard import intake, pipeline
from leaderboard.models import DeviceProfile, LatencyResult, Submission
from tests.browser import chromium_page
from tests.test_browser_pages import WIDTHS, page_overflow, shoot

pytestmark = pytest.mark.browser


@pytest.fixture
def ladder(transactional_db, settings, tmp_path, served):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.WORK_DIR = tmp_path / "work"
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}"]
    settings.EVAL_DATA = "sample"
    DeviceProfile.objects.update(active=False)
    url = f"{served.url}/tiny.tar.gz"
    sub, _ = intake.create_submission(
        intake.resolve_source(url), url, "Tiny ladder", enqueue=False,
        precisions=["fp32", "bf16", "int8", "int4"],
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # speed only: a 64-wide model is fastest on one thread
    try:
        assert pipeline.run(sub.pk) == "done"
    finally:
        torch.set_num_threads(threads)
    sub = Submission.objects.get(pk=sub.pk)
    board = DeviceProfile.objects.create(slug="test-board", name="Test board", runtime="eager")
    for precision, ms, rss in (("fp32", 8.0, 300), ("bf16", 5.1, 200), ("int8", 3.9, 150),
                               ("int4", 2.4, 120)):  # fmt: skip
        LatencyResult.objects.create(
            entry=sub.entry, profile=board, kind="measured", precision=precision,
            execute_ms=ms, peak_rss_mb=rss,
        )  # fmt: skip
    return sub


def test_the_ladder_and_the_quantization_page_fit_desktop_and_phone(
    live_server, ladder, chromium_path
):
    with chromium_page(chromium_path) as page:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + ladder.entry.get_absolute_url())
            rungs = page.locator("#quantization-ladder tbody tr")
            assert rungs.count() == 4
            assert "reference" in rungs.nth(0).inner_text()
            assert "2.4 test-board" in rungs.nth(3).inner_text()
            shoot(page, "model-ladder")
            assert page_overflow(page) == 0

            page.goto(live_server.url + "/quantization/")
            page.wait_for_selector("#chart-quantization.drawn .main-svg", timeout=20000)
            points = page.locator("#chart-quantization .scatterlayer .point").count()
            assert points == 3  # bf16, int8, int4 of one model, against size reduction
            page.select_option("#quant-axis", "test-board")
            page.wait_for_function(
                "document.querySelector('#chart-quantization').layout.xaxis.title.text"
                ".includes('test-board')"
            )
            shoot(page, "quantization")
            assert page_overflow(page) == 0
        assert page.errors == []
