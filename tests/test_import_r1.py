"""The MobileLLM-R1 README's averages: a reported table of its own, honestly labelled, with
its contamination column as a flag on the entries; idempotent, refused when malformed."""

import json
import shutil

import pytest
from django.core.management import CommandError, call_command

from leaderboard.importing import DATA_DIR, import_reported
from leaderboard.importing_r1 import PROTOCOL, TABLE
from leaderboard.models import Entry, EvaluationRun, PaperRow
from tests.responses import body

R1_TRAIN = ["obqa", "piqa", "boolq", "arc_easy", "arc_challenge"]


def test_the_fourteen_rows_are_a_table_of_their_own_with_their_flags(reported):
    placed = PaperRow.objects.filter(table=TABLE).select_related("run__entry")
    assert placed.count() == 14
    for place in placed:
        assert place.run.kind == "reported" and not place.run.ranked
        assert place.run.scores.count() == 0  # average only, never per-task marks
    r1 = Entry.objects.get(slug="mobilellm-r1-950m-base")
    assert r1.contamination_tasks == R1_TRAIN and "MobileLLM-R1 README" in r1.contamination_source
    assert r1.hub_id == "facebook/MobileLLM-R1-950M-base"
    assert r1.runs.get().avg == pytest.approx(0.586)
    smol = Entry.objects.get(slug="smollm2-135m-base")
    assert smol.contamination == "" and smol.contamination_source == ""
    assert Entry.objects.filter(contamination__gt="").count() == 3


def test_a_second_import_writes_nothing(reported):
    before = (Entry.objects.count(), EvaluationRun.objects.count(), PaperRow.objects.count())
    assert import_reported().changed == 0
    assert (
        Entry.objects.count(),
        EvaluationRun.objects.count(),
        PaperRow.objects.count(),
    ) == before


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("MobileLLM-R1-140M-base,140000000,140M,44.3", "MobileLLM-R1-140M-base,140000000,140M,n/a",
         "must be numbers"),
        ("Gemma-3-270M-pt,268000000,268M,48.4", "Gemma-3-270M-pt,268000000,268M,148.4",
         "out of range"),
        (',"obqa,piqa,boolq', ',"obqa,mmlu,boolq', "unknown task 'mmlu'"),
        ("google/gemma-3-270m", "gemma 3", "not owner/name"),
    ],
)  # fmt: skip
def test_a_malformed_row_is_refused_and_nothing_is_written(db, tmp_path, old, new, message):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    path = data / "mobilellm_r1_commonsense_avg_reported.csv"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(CommandError, match=message):
        call_command("import_reported", data_dir=data)
    assert Entry.objects.count() == 0


def test_the_leaderboard_shows_them_apart_with_label_and_badge(client, reported):
    data = json.loads(body(client.get("/leaderboard.json")))
    assert data["count"] == 41  # the ranked table is unchanged
    elsewhere = {r["slug"]: r for r in data["reported_elsewhere"]}
    assert len(elsewhere) == 14
    assert elsewhere["mobilellm-r1-360m-base"]["protocol"] == PROTOCOL
    assert elsewhere["mobilellm-r1-360m-base"]["contamination"]["tasks"] == R1_TRAIN
    assert elsewhere["qwen3-06b-base"]["contamination"] is None
    html = body(client.get("/"))
    section = html[html.index('id="reported-elsewhere"') :]
    assert PROTOCOL in section and "contaminated: obqa, piqa" in section
    only = json.loads(body(client.get("/leaderboard.json?contamination=only")))
    assert {r["slug"] for r in only["reported_elsewhere"]} == {
        "mobilellm-r1-140m-base", "mobilellm-r1-360m-base", "mobilellm-r1-950m-base"
    }  # fmt: skip
    assert only["count"] == 0


def test_an_operator_flags_any_entry_in_the_admin_and_the_filter_follows(
    client, admin_client, reported
):
    entry = Entry.objects.get(slug="mobilellm-125m")
    form = body(admin_client.get(f"/admin/leaderboard/entry/{entry.pk}/change/"))
    assert 'name="contamination"' in form and 'name="contamination_source"' in form
    Entry.objects.filter(pk=entry.pk).update(contamination="hellaswag", contamination_source="x")
    rows = json.loads(body(client.get("/leaderboard.json")))["rows"]
    flagged = next(r for r in rows if r["slug"] == "mobilellm-125m")
    assert flagged["contamination"] == {"tasks": ["hellaswag"], "source": "x"}
    kept = json.loads(body(client.get("/leaderboard.json?contamination=exclude")))
    assert kept["count"] == 40
    assert "contaminated: hellaswag" in body(client.get("/models/mobilellm-125m/"))
