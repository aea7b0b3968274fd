import csv
import shutil
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from leaderboard.importing import DATA_DIR, import_reported
from leaderboard.models import (
    DeviceProfile,
    Entry,
    EvaluationRun,
    LatencyResult,
    PaperRow,
    TaskScore,
)


def counts():
    return (
        Entry.objects.count(),
        EvaluationRun.objects.count(),
        TaskScore.objects.count(),
        PaperRow.objects.count(),
        LatencyResult.objects.count(),
        DeviceProfile.objects.count(),
    )


def test_it_imports_every_row_of_the_papers_tables_with_its_source(reported):
    with open(DATA_DIR / "mobilellm_csr_reported.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 41
    for row in rows:
        run = EvaluationRun.objects.get(entry__name=row["model"], suite__slug="mobilellm-csr")
        assert run.kind == "reported"
        assert run.citation == row["source"]
        assert run.scores.count() == 8
        arc = run.scores.get(task__key="arc_easy")
        assert round(arc.value * 100, 1) == float(row["arc_easy"])
        assert round(run.avg * 100, 1) == float(row["avg"])


def test_it_imports_table_7_the_ablation_and_the_bnn_table(reported):
    latency = LatencyResult.objects.get(entry__name="MobileLLM-LS-125M")
    assert (latency.load_ms, latency.init_ms, latency.execute_ms) == (43.6, 1388.2, 16.0)
    assert latency.profile.reported and latency.citation == "MobileLLM paper Table 7"
    assert EvaluationRun.objects.filter(citation__contains="ablation", ranked=False).count() == 8
    bnn = EvaluationRun.objects.get(entry__name="ReActNet-A (Liu et al. 2020)")
    assert bnn.suite.slug == "bnn-imagenet" and bnn.suite.reported_only
    assert {s.task.key: round(s.value * 100, 1) for s in bnn.scores.all()} == {
        "top1": 69.4,
        "top5": 88.6,
    }
    # An empty top-5 in the paper stays missing rather than becoming zero.
    assert not TaskScore.objects.filter(
        run__entry__name="DoReFa-Net (Zhou et al. 2016)", task__key="top5"
    ).exists()


def test_a_second_import_changes_nothing(reported):
    before = counts()
    report = import_reported()
    assert report.changed == 0
    assert counts() == before


def test_the_command_says_when_nothing_changed(reported):
    out = StringIO()
    call_command("import_reported", stdout=out)
    assert "Nothing changed" in out.getvalue()


def test_it_refuses_a_row_whose_avg_is_not_the_mean_and_writes_nothing(db, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    path = data / "mobilellm_csr_reported.csv"
    text = path.read_text().replace("OPT-125M,125M,12,41.3", "OPT-125M,125M,12,45.3")
    path.write_text(text)
    with pytest.raises(CommandError, match=r"OPT-125M.*differs from the mean"):
        call_command("import_reported", data_dir=data)
    assert Entry.objects.count() == 0


def test_the_paper_groups_are_kept_where_the_size_ranges_disagree(reported):
    # Qwen1.5-500M sits in the paper's 600M group (Table 8) though it is named 500M.
    assert Entry.objects.get(name="Qwen1.5-500M").size_class == "600M"
    assert Entry.objects.get(name="BLOOM-560M").size_class == "350M"
    assert Entry.objects.get(name="MobileLLM-600M").size_class == "600M"
    assert Entry.objects.get(name="RWKV-3B").size_class == "1.5B"


def test_the_command_says_what_it_imported_in_words(db):
    out = StringIO()
    call_command("import_reported", stdout=out)
    text = out.getvalue()
    models = Entry.objects.count()
    assert f"Added: {models} models, " in text
    assert f"{DeviceProfile.objects.filter(reported=True).count()} device profile" in text
    assert "unchanged" not in text and "entries" not in text
