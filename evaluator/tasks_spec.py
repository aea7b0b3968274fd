"""The task suite, defined once: what the harness runs, what the site shows, what we import.

Everything else reads this module: the harness (lm-eval task names, headline metrics), the
site's Suite and Task rows (seeded from it by a data migration, checked against it by a
test), the importer (the reference CSVs' column names) and the statistics (each task's size
on the full benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass

SUITE_SLUG = "mobilellm-csr"
SUITE_NAME = "Zero-shot common-sense reasoning (MobileLLM suite)"
SUITE_DESCRIPTION = (
    "ARC-e, ARC-c, BoolQ, PIQA, SIQA, HellaSwag, OBQA, WinoGrande; accuracy in %, zero-shot, "
    "as in the MobileLLM paper's Tables 3 and 8."
)


@dataclass(frozen=True)
class TaskSpec:
    key: str  # ours: URLs, columns, CSV headers ("siqa")
    harness: str  # the stock lm-eval task name ("social_iqa")
    label: str  # column heading ("SIQA")
    # acc_norm where the task has it, else acc (DESIGN §4): what the paper's one number is.
    headline: str
    csv_column: str  # its column in the reference CSVs (leaderboard/data/, shared/reference/)
    split: str  # the split lm-eval scores on
    # Documents in that split: the n of a reported number, which the paper does not print
    # (counts of the Hugging Face datasets lm-eval 0.4 reads; see docs/statistics.md).
    full_n: int
    # Its stock yaml's directory under lm_eval/tasks/ (lm-eval 0.4.13's layout): indexing
    # these few directories instead of all of lm-eval's tasks saves seconds per process
    # (evaluator/datasource.py; a test checks the entries equal the full index's).
    lm_eval_dir: str


# One task a line reads as a table.
# fmt: off
TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("arc_easy", "arc_easy", "ARC-e", "acc_norm", "arc_easy", "test", 2376, "arc"),
    TaskSpec("arc_challenge", "arc_challenge", "ARC-c", "acc_norm", "arc_challenge", "test", 1172,
             "arc"),
    TaskSpec("boolq", "boolq", "BoolQ", "acc", "boolq", "validation", 3270, "super_glue/boolq"),
    TaskSpec("piqa", "piqa", "PIQA", "acc_norm", "piqa", "validation", 1838, "piqa"),
    TaskSpec("siqa", "social_iqa", "SIQA", "acc", "siqa", "validation", 1954, "siqa"),
    TaskSpec("hellaswag", "hellaswag", "HellaSwag", "acc_norm", "hellaswag", "validation", 10042,
             "hellaswag"),
    TaskSpec("obqa", "openbookqa", "OBQA", "acc_norm", "openbookqa", "test", 500, "openbookqa"),
    TaskSpec("winogrande", "winogrande", "WinoGrande", "acc", "winogrande", "validation", 1267,
             "winogrande"),
)
# fmt: on

KEYS = [t.key for t in TASKS]
HARNESS_TASKS = [t.harness for t in TASKS]
BY_KEY = {t.key: t for t in TASKS}
BY_HARNESS = {t.harness: t for t in TASKS}
# Headline metric per lm-eval task name, in the paper's column order.
HEADLINE = {t.harness: t.headline for t in TASKS}
