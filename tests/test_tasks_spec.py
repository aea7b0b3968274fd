"""The task spec (evaluator/tasks_spec.py) is the one definition of the suite: the database
rows seeded from it, lm-eval's tasks and the reference CSVs must all agree with it."""

import csv

import pytest

from evaluator import datasource, tasks_spec
from leaderboard.importing import DATA_DIR
from leaderboard.models import Suite


@pytest.mark.django_db
def test_the_seeded_suite_matches_the_task_spec():
    suite = Suite.objects.get(slug=tasks_spec.SUITE_SLUG)
    rows = list(suite.tasks.values_list("key", "harness_name", "label", "headline_metric"))
    assert rows == [(t.key, t.harness, t.label, t.headline) for t in tasks_spec.TASKS]
    assert list(suite.tasks.values_list("position", flat=True)) == list(range(len(rows)))
    assert suite.name == tasks_spec.SUITE_NAME


def test_each_task_scores_the_split_the_spec_names():
    for spec in tasks_spec.TASKS:
        assert datasource.eval_split(spec.harness) == spec.split, spec.key


def test_the_reference_csvs_have_a_column_for_every_task():
    with open(DATA_DIR / "mobilellm_csr_reported.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert [t.csv_column for t in tasks_spec.TASKS] == [
        c for c in header if c in {t.csv_column for t in tasks_spec.TASKS}
    ]


def test_the_suites_directories_give_the_full_indexs_entries():
    """stock_task_manager indexes only the suite's directories (seconds saved per process):
    every task must come out exactly as lm-eval's full index has it."""
    narrow = datasource.stock_task_manager().task_index
    full = datasource.full_task_manager().task_index
    assert len(narrow) < len(full) / 100  # really the narrow index, not the fallback
    for spec in tasks_spec.TASKS:
        mine, stock = narrow[spec.harness], full[spec.harness]
        assert (mine.yaml_path, mine.cfg, mine.kind) == (stock.yaml_path, stock.cfg, stock.kind)
