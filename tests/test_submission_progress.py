"""What the submission page says about progress, and what its log tail leaves out."""

import logging

import pytest

from leaderboard import pipeline
from leaderboard.models import Entry, Submission
from leaderboard.progress import stage
from leaderboard.redaction import harmless
from tests.factories import make_entry, make_run

TASKS = ["arc_easy", "arc_challenge", "boolq", "piqa", "social_iqa", "hellaswag", "openbookqa",
         "winogrande"]  # fmt: skip


def submission(**fields) -> Submission:
    fields.setdefault("status", "pending")
    return Submission.objects.create(
        url="https://example.org/x.tar.gz",
        source_kind="archive",
        checkpoint_key=f"url:{fields['status']}:{Submission.objects.count()}",
        name="Tiny",
        secret="s",
        tasks=TASKS,
        **fields,
    )


def test_a_finished_download_is_not_shown_as_a_finished_task(db):
    sub = submission(status="fetching", task_fraction=1.0)
    assert sub.progress == 0.0
    assert stage(sub) == "downloading the checkpoint: 100%"


def test_a_run_that_failed_while_loading_shows_no_progress(db):
    # The download's fraction is still on the row: the evaluation never began.
    sub = submission(status="failed", task_fraction=1.0)
    assert sub.progress == 0.0
    assert stage(sub) == "failed before the evaluation began"


def test_progress_counts_tasks_done_and_names_the_current_one(db):
    sub = submission(
        status="evaluating", task_index=2, task_name="boolq", task_fraction=0.5,
        entry=make_entry("Tiny"),
    )  # fmt: skip
    assert sub.progress == pytest.approx(2.5 / 8)
    assert stage(sub) == "task 3 of 8 (boolq): 50% of its questions"


def test_the_page_and_json_say_the_stage_in_words(client, db):
    sub = submission(status="evaluating", entry=make_entry("Tiny"))
    data = client.get(f"/submissions/{sub.pk}.json").json()
    assert data["stage"] == "loading the model"
    assert data["outcome"] is None
    assert "loading the model" in client.get(sub.get_absolute_url()).content.decode()


def record(name: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, None, None)


def test_torchaos_failed_to_load_lines_are_left_out_of_the_public_tail():
    tail = pipeline.LogTail()
    noise = "Failed to load /venv/torchao/_C_mxfp8.so: undefined symbol: _ZN3c10"
    tail.emit(record("torchao", noise))
    tail.emit(record("leaderboard.pipeline", "Failed to load the tokenizer"))
    assert harmless(record("torchao", noise))
    assert "torchao" not in tail.text()
    assert "Failed to load the tokenizer" in tail.text()
    assert "_C_mxfp8.so" in tail.full()  # operators keep everything


def test_a_cancelled_submission_leaves_no_empty_model_page(db):
    sub = submission(status="cancelled", entry=make_entry("Cancelled tiny"))
    pipeline.drop_empty_entry(sub.pk)
    sub.refresh_from_db()
    assert sub.entry_id is None
    assert not Entry.objects.filter(name="Cancelled tiny").exists()


def test_an_entry_with_scores_is_kept_when_a_later_submission_fails(db):
    entry = make_entry("Scored tiny")
    make_run(entry)
    sub = submission(status="failed", entry=entry)
    pipeline.drop_empty_entry(sub.pk)
    sub.refresh_from_db()
    assert sub.entry_id == entry.pk
