"""What a new user sees on the secondary pages, in Chromium at desktop and phone widths."""

import json
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from evaluator.tasks_spec import HARNESS_TASKS as TASKS
from leaderboard.importing import import_reported
from leaderboard.models import DeviceProfile, LatencyResult, Probe, Submission
from tests.browser import chromium_page
from tests.factories import make_entry, make_run

pytestmark = pytest.mark.browser

WIDTHS = (1366, 390)
# Set SHOTS_DIR to keep the screenshots for a person to look at.
SHOTS_DIR = os.getenv("SHOTS_DIR")


def shoot(page, name: str) -> None:
    if SHOTS_DIR:
        Path(SHOTS_DIR).mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=f"{SHOTS_DIR}/{name}-{page.viewport_size['width']}.png", full_page=True
        )


def page_overflow(page) -> int:
    """How many pixels the page scrolls sideways (0 when it does not)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def measured(entry, profile, decode_ms):
    p50 = sorted(decode_ms)[len(decode_ms) // 2]
    return LatencyResult.objects.create(
        entry=entry,
        profile=profile,
        kind="measured",
        citation="measured by this site",
        load_ms=3.0,
        init_ms=40.0,
        execute_ms=p50,
        decode_ms_p50=p50,
        decode_ms_p90=max(decode_ms),
        decode_tok_s=1000 / p50,
        peak_rss_mb=420.0,
        file_size_mb=250.0,
        prefill_ms=30.0,
        prefill_tokens=128,
        roofline_frac=0.4,
        samples={"decode_ms": decode_ms},
    )


def test_the_latency_page_never_scrolls_sideways_and_labels_its_points(
    live_server, transactional_db, chromium_path
):
    import_reported()
    board = DeviceProfile.objects.create(
        slug="test-board", name="Test board", threads=1, runtime="eager", dtype="float32"
    )
    steady = make_entry("Steady tiny", params=10_000_000)
    make_run(steady)
    measured(steady, board, [2.3, 2.31, 2.29, 2.32, 2.3])
    noisy = make_entry("Noisy tiny", params=10_000_000)
    make_run(noisy)
    measured(noisy, board, [2.3, 0.45, 14.1, 2.2, 16.8])
    with chromium_page(chromium_path) as page:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + "/latency/")
            page.wait_for_selector(".latency-chart.drawn .main-svg", timeout=20000)
            page.wait_for_function("document.querySelectorAll('.latency-chart.drawn').length == 2")
            shoot(page, "latency")
            assert page_overflow(page) == 0
        # At laptop width every column of the measured table, Source last, is in its card.
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(live_server.url + "/latency/")
        card = page.locator("#profile-test-board .table-wrap").bounding_box()
        source = page.locator("#profile-test-board th.source").bounding_box()
        assert source["x"] + source["width"] <= card["x"] + card["width"] + 1
        noisy_row = page.locator("#profile-test-board tr", has_text="Noisy tiny")
        assert noisy_row.locator(".unstable").count() == 1
        assert "5 samples" in noisy_row.inner_text()
        steady_row = page.locator("#profile-test-board tr", has_text="Steady tiny")
        assert steady_row.locator(".unstable").count() == 0
        # Table 7's 15.6-16 ms get a linear axis with their names beside the points.
        page.wait_for_function("document.querySelectorAll('.latency-chart.drawn').length == 2")
        phone = "#chart-latency-iphone13-executorch-mps"
        assert page.evaluate(f"document.querySelector('{phone}').layout.xaxis.type") == "linear"
        labels = page.locator(f"{phone} .scatterlayer .textpoint").evaluate_all(
            "els => els.map(e => e.textContent)"
        )
        assert "MobileLLM-LS-125M" in labels
        assert page.errors == []


def finished_submission(name: str, probe_error: str = "") -> Submission:
    profile = DeviceProfile.objects.create(
        slug="test-board", name="Test board", threads=1, runtime="eager", dtype="float32"
    )
    entry = make_entry(name, params=10_000_000)
    run = make_run(entry, {"arc_easy": 0.61, "boolq": 0.625})
    sub = Submission.objects.create(
        url="https://example.org/tiny.tar.gz",
        source_kind="archive",
        checkpoint_key=f"url:{name}",
        name=name,
        secret="s",
        status="done",
        tasks=TASKS,
        task_index=7,
        task_name="winogrande",
        task_fraction=1.0,
        entry=entry,
        run=run,
    )
    if probe_error:
        Probe.objects.create(entry=entry, profile=profile, submission=sub, status="failed",
                             error=probe_error)  # fmt: skip
    else:
        measured(entry, profile, [2.3, 2.31, 2.29, 2.32, 2.3])
        Probe.objects.create(entry=entry, profile=profile, submission=sub, status="done")
    return sub


def test_a_finished_submission_shows_its_scores_and_latency(
    live_server, transactional_db, chromium_path
):
    sub = finished_submission("Finished tiny")
    with chromium_page(chromium_path) as page:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + sub.get_absolute_url())
            shoot(page, "submission-done")
            assert page_overflow(page) == 0
        scores = page.locator("#outcome-scores")
        assert scores.locator("tbody td").count() == 9  # Avg. and the eight tasks
        assert "ARC-e" in scores.inner_text() and "61.00" in scores.inner_text()
        latency = page.locator("#outcome-latency").inner_text()
        assert "Test board" in latency and "2.3" in latency and "5 samples" in latency
        assert page.locator("#percent").inner_text() == "100%"
        assert page.locator("#stage").inner_text() == "finished"
        assert page.errors == []


def test_the_queue_shows_a_failed_latency_probe(live_server, transactional_db, chromium_path):
    finished_submission("Probe failed tiny", probe_error="latency probe on Test board failed")
    with chromium_page(chromium_path) as page:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + "/queue/")
            shoot(page, "queue")
            assert page_overflow(page) == 0
        row = page.locator("#queue tbody tr", has_text="Probe failed tiny")
        assert "done" in row.locator("td").nth(3).inner_text()
        assert row.locator("td.probes").inner_text().strip() == "test-board: probe failed"
        assert page.errors == []


def test_cancelling_asks_for_confirmation_first(live_server, transactional_db, chromium_path):
    sub = Submission.objects.create(
        url="https://example.org/tiny.tar.gz",
        source_kind="archive",
        checkpoint_key="url:cancel",
        name="Running tiny",
        secret="s",
        status="pending",
        tasks=TASKS,
    )
    staff = User.objects.create_user("op", is_staff=True)
    client = Client()
    client.force_login(staff)
    with chromium_page(chromium_path) as page:
        page.context.add_cookies(
            [
                {
                    "name": "sessionid",
                    "value": client.cookies["sessionid"].value,
                    "url": live_server.url,
                }
            ]  # fmt: skip
        )
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + sub.get_absolute_url())
            assert page_overflow(page) == 0
        # One click only opens the question; the submission runs on until it is answered.
        assert not page.locator("#cancel").is_visible()
        page.click("#cancel-box summary")
        shoot(page, "submission-cancel")
        assert page.locator("#cancel").is_visible()
        sub.refresh_from_db()
        assert sub.status == "pending"
        page.click("#cancel")
        page.wait_for_selector("#status.cancelled")
        assert page.errors == []
    sub.refresh_from_db()
    assert sub.status == "cancelled"


PROVENANCE = {
    "benchmark": "sample",
    "limit": None,
    "num_fewshot": 0,
    "data": {
        "source": "sample",
        "root": None,
        "tasks": {
            "arc_easy": {
                "file": "arc_easy.jsonl",
                "split": "test",
                "sha256": "ab" * 32,
                "items": 20,
            },  # fmt: skip
        },
    },
    "task_versions": {"arc_easy": 1.0},
    "versions": {"lm_eval": "0.4.9", "transformers": "4.57.1", "torch": "2.9.0"},
    "lm_eval_version": "0.4.9",
    "dtype": "float32",
    "batch_size": 8,
    "device": "cpu",
    "seeds": {"random": 0, "torch": 1234},
    "engine": {"name": "fast", "lm_eval_model": "hf-trie", "version": "1"},
    "hardware": {"cpu": "AMD EPYC 7B13", "cores": 2, "platform": "Linux-6.1-x86_64"},
    "started_at": "2026-12-06T05:00:00Z",
    "wall_s": 95.2,
    "project_version": "0.3.0",
    "submission": 7,
}


def test_the_model_page_shows_provenance_as_a_table_with_a_json_download(
    live_server, transactional_db, chromium_path
):
    entry = make_entry("Provenance tiny", params=10_000_000)
    run = make_run(entry, provenance=PROVENANCE)
    with chromium_page(chromium_path) as page:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + entry.get_absolute_url())
            shoot(page, "model")
            assert page_overflow(page) == 0
        table = page.locator(f"#provenance-{run.pk} table.facts-table")
        facts = dict(
            zip(
                table.locator("th").all_inner_texts(),
                table.locator("td").all_inner_texts(),
                strict=True,
            )
        )
        assert facts["Harness"] == "lm-eval 0.4.9, zero-shot"
        assert facts["Engine"] == "hf-trie, setting fast, v1"
        assert facts["Hardware"] == "AMD EPYC 7B13, 2 cores, Linux-6.1-x86_64"
        assert facts["Duration"] == "1.6 min (95 s)"
        assert "{'" not in page.content()  # no raw Python dict left
        with page.expect_download() as download:
            page.click(f"#provenance-{run.pk} a[download]")
        saved = json.loads(Path(download.value.path()).read_text())
        assert saved == PROVENANCE
        assert page.errors == []


def test_the_paper_index_shows_captions_and_sizes_and_sources_stay_on_one_line(
    live_server, transactional_db, chromium_path
):
    import_reported()
    with chromium_page(chromium_path) as page:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + "/paper/")
            shoot(page, "paper-index")
            assert page_overflow(page) == 0
            page.goto(live_server.url + "/paper/layer-sharing-ablation/")
            shoot(page, "paper-ablation")
            assert page_overflow(page) == 0
            page.goto(live_server.url + "/paper/table-8/")
            shoot(page, "paper-table-8")
            assert page_overflow(page) == 0
        page.goto(live_server.url + "/paper/layer-sharing-ablation/")
        caption = page.locator("#caption").inner_text()
        assert "layer-sharing ablation" in caption and "Tables 3 and 8" not in caption
        # One source for all rows is said once, not repeated in a column.
        assert "layer-sharing ablation" in page.locator("#common-source").inner_text()
        assert page.locator("#paper-table td.source").count() == 0
        # Table 8 quotes Table 3 for two rows: a Source column, one line high per cell.
        page.goto(live_server.url + "/paper/table-8/")
        heights = page.locator("#paper-table tbody td.source").evaluate_all(
            "cells => cells.map(c => c.getBoundingClientRect().height)"
        )
        numbers = page.locator("#paper-table tbody td.num").first.bounding_box()["height"]
        assert max(heights) <= numbers + 1
        page.goto(live_server.url + "/paper/")
        rows = {
            r.locator("td.name").inner_text(): r.locator("td").all_inner_texts()
            for r in page.locator("#paper-index tbody tr").all()
        }
        assert rows["Table 3"][2] == "17 in 2 groups" and rows["Table 3"][3] == "8"
        assert rows["Layer-sharing ablation"][2] == "8 in 2 groups"
        assert "Table 8" in rows["Table 8"][1] and rows["Table 7"][2] == "3"
        assert page.errors == []


def test_buttons_and_fields_share_one_style(live_server, transactional_db, chromium_path):
    with chromium_page(chromium_path) as page:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + "/submit/")
            shoot(page, "submit")
            assert page_overflow(page) == 0
        style = """el => { const s = getComputedStyle(el);
            return [s.borderRadius, s.fontFamily, s.backgroundColor]; }"""
        submit = page.locator("#submit-button").evaluate(style)
        assert submit[0] == "5px" and submit[2] != "rgb(239, 239, 239)"  # not Chromium's grey
        fields = page.locator(".submit-form input[type=text], .submit-form textarea")
        radii = {tuple(f.evaluate(style)[:2]) for f in fields.all()}
        assert radii == {("5px", submit[1])}  # the page's font, not the browser's
        assert page.errors == []
