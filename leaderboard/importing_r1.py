"""The MobileLLM-R1 README's base-model table: 14 sub-2B models, their 0-shot "CommonSense
Avg." only (Meta's own evaluation code, per-task values unpublished), imported as a reported
table of its own. It is never ranked with the paper's rows nor mixed into the per-task marks:
an average without per-task values has no derivable standard error. Its
`trained_on_benchmark_train_splits` column becomes each entry's contamination flag.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.utils.text import slugify

from evaluator.tasks_spec import BY_KEY

from .models import Entry, EvaluationRun, PaperRow

CSV_NAME = "mobilellm_r1_commonsense_avg_reported.csv"
TABLE = "MobileLLM-R1 base models (average only)"
SOURCE = (
    "MobileLLM-R1 README (github.com/facebookresearch/MobileLLM-R1), base model table: "
    "0-shot CommonSense Avg., Meta's evaluation code"
)
PROTOCOL = "reported elsewhere, average only"
CONTAMINATION_SOURCE = (
    "MobileLLM-R1 README: train splits of these benchmarks were mixed into mid-training"
)
COLUMNS = ["model", "params", "params_label", "commonsense_avg", "hub_id",
           "trained_on_benchmark_train_splits"]  # fmt: skip
# The README's short task names -> our task keys.
ALIASES = {"openbookqa": "obqa", "social_iqa": "siqa"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_rows(rows: list[dict], problem) -> list[dict]:
    """Every row parsed, or `problem` raised for the first malformed one (nothing written)."""
    if rows and list(rows[0]) != COLUMNS:
        raise problem(f"{CSV_NAME}: columns {list(rows[0])}, expected {COLUMNS}")
    parsed, seen = [], set()
    for line, row in enumerate(rows, start=2):
        where = f"{CSV_NAME} line {line}"
        name = (row.get("model") or "").strip()
        if not name or slugify(name) in seen:
            raise problem(f"{where}: missing or repeated model name {name!r}")
        seen.add(slugify(name))
        try:
            params = int(row["params"])
            avg = Decimal(row["commonsense_avg"])
        except (TypeError, ValueError, InvalidOperation):
            raise problem(f"{where} ({name}): params and commonsense_avg must be numbers") from None
        if params <= 0 or not 0 <= avg <= 100:
            raise problem(f"{where} ({name}): params {params} or average {avg} out of range")
        hub_id = (row.get("hub_id") or "").strip()
        if not HUB_ID.match(hub_id):
            raise problem(f"{where} ({name}): hub_id {hub_id!r} is not owner/name")
        tasks = []
        for alias in filter(None, (row.get("trained_on_benchmark_train_splits") or "").split(",")):
            key = ALIASES.get(alias.strip(), alias.strip())
            if key not in BY_KEY:
                raise problem(f"{where} ({name}): unknown task {alias!r} in the contamination")
            tasks.append(key)
        parsed.append({"name": name, "params": params, "label": row["params_label"].strip(),
                       "avg": avg, "hub_id": hub_id, "contamination": tasks})  # fmt: skip
    return parsed


def import_r1(rows: list[dict], suite, report, upsert) -> None:
    """Write the checked rows (idempotent: upsert matches natural keys)."""
    for position, row in enumerate(rows):
        contamination = {"contamination": ",".join(row["contamination"]),
                         "contamination_source": CONTAMINATION_SOURCE if row["contamination"]
                         else ""}  # fmt: skip
        entry = upsert(
            Entry,
            report,
            "entries",
            {"slug": slugify(row["name"])},
            {"name": row["name"], "params": row["params"], "params_label": row["label"],
             "hub_id": row["hub_id"], **contamination},
        )  # fmt: skip
        run = upsert(
            EvaluationRun,
            report,
            "runs",
            {"entry": entry, "suite": suite, "kind": EvaluationRun.Kind.REPORTED,
             "citation": SOURCE},
            {
                # Not ranked with the paper's rows: a different protocol and no stderr.
                "ranked": False,
                "avg": float(row["avg"] / 100),
                "benchmark": "full",
                "status": EvaluationRun.Status.DONE,
                "provenance": {"source": SOURCE, "protocol": PROTOCOL,
                               "note": "Average of the eight tasks only; no per-task values."},
            },
        )  # fmt: skip
        upsert(PaperRow, report, "table rows", {"table": TABLE, "run": run},
               {"group": "", "position": position})  # fmt: skip
