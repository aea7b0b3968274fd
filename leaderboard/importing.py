"""Import the published results that the project ships (leaderboard/data/*.csv).

Every row keeps its source. Importing twice changes nothing: rows are matched on natural
keys and only written when a value differs.
"""

import csv
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.utils.text import slugify

from evaluator import tasks_spec

from . import importing_r1
from .models import DeviceProfile, Entry, EvaluationRun, LatencyResult, PaperRow, TaskScore
from .suites import bnn_suite, csr_suite
from .units import parse_params

DATA_DIR = Path(__file__).resolve().parent / "data"
PAPER = (
    "Liu et al., MobileLLM: Optimizing Sub-billion Parameter Language Models for On-Device "
    "Use Cases, ICML 2024"
)
AVG_TOLERANCE = Decimal("0.05")
HUB_IDS = "paper_hub_ids.csv"
IPHONE_PROFILE = "iphone13-executorch-mps"


class ImportProblem(ValueError):
    pass


@dataclass
class Report:
    counts: Counter = field(default_factory=Counter)

    def note(self, what: str, created: bool, changed: bool) -> None:
        self.counts[
            f"{what} created" if created else f"{what} updated" if changed else f"{what} unchanged"
        ] += 1

    @property
    def changed(self) -> int:
        return sum(v for k, v in self.counts.items() if not k.endswith("unchanged"))

    def __str__(self) -> str:
        return ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items()))


def read_csv(name: str, data_dir: Path = DATA_DIR) -> list[dict]:
    with open(data_dir / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def check_avg(row: dict, where: str) -> None:
    values = [Decimal(row[spec.csv_column]) for spec in tasks_spec.TASKS]
    mean = sum(values) / len(values)
    printed = Decimal(row["avg"])
    if abs(mean - printed) > AVG_TOLERANCE:
        raise ImportProblem(
            f"{where}: Avg {printed} differs from the mean of the eight tasks ({mean:.3f}) "
            f"by more than {AVG_TOLERANCE}; fix the row (a typo in a task column?)"
        )


def upsert(model, report: Report, what: str, lookup: dict, values: dict):
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        obj = model.objects.create(**lookup, **values)
        report.note(what, created=True, changed=True)
        return obj
    changed = {k: v for k, v in values.items() if getattr(obj, k) != v}
    if changed:
        for k, v in changed.items():
            setattr(obj, k, v)
        obj.save(update_fields=list(changed))
    report.note(what, created=False, changed=bool(changed))
    return obj


def import_reported(data_dir: Path = DATA_DIR) -> Report:
    report = Report()
    csr_rows = read_csv("mobilellm_csr_reported.csv", data_dir)
    ablation_rows = read_csv("layer_sharing_ablation_reported.csv", data_dir)
    # Validate everything before writing anything.
    for i, row in enumerate(csr_rows, start=2):
        check_avg(row, f"mobilellm_csr_reported.csv line {i} ({row['model']})")
    for i, row in enumerate(ablation_rows, start=2):
        check_avg(row, f"layer_sharing_ablation_reported.csv line {i}")
    r1_rows = importing_r1.check_rows(read_csv(importing_r1.CSV_NAME, data_dir), ImportProblem)
    layout = read_csv("paper_layout.csv", data_dir)
    known = {row["model"] for row in csr_rows}
    hub_ids = {row["model"]: row["hub_id"].strip() for row in read_csv(HUB_IDS, data_dir)}
    for model, hub_id in hub_ids.items():
        if model not in known or not importing_r1.HUB_ID.match(hub_id):
            raise ImportProblem(f"{HUB_IDS}: {model!r} -> {hub_id!r}: no such paper row or no repo")
    for row in layout:
        if row["model"] not in known:
            raise ImportProblem(f"paper_layout.csv names {row['model']!r}, which no row has")

    with transaction.atomic():
        suite = csr_suite()
        tasks = {t.key: t for t in suite.tasks.all()}
        runs = {}
        for row in csr_rows:
            entry = upsert(
                Entry,
                report,
                "entries",
                {"slug": slugify(row["model"])},
                {
                    "name": row["model"],
                    "params": parse_params(row["params"]),
                    "params_label": row["params"],
                    "layers": int(row["layers"]) if row["layers"] else None,
                    # Our mapping to the Hub repo: its measured runs are shown beside these.
                    "hub_id": hub_ids.get(row["model"], ""),
                },
            )
            runs[row["model"]] = _reported_run(report, entry, suite, tasks, row, ranked=True)
        groups = {}
        for position, row in enumerate(layout):
            run = runs[row["model"]]
            upsert(
                PaperRow,
                report,
                "table rows",
                {"table": row["table"], "run": run},
                {"group": row["group"], "position": position},
            )
            groups.setdefault(row["model"], row["group"])
        _pin_size_classes(report, runs, groups)

        for position, row in enumerate(ablation_rows):
            name = f"Layer-sharing ablation {row['model_size']}: {row['sharing']}"
            entry = upsert(
                Entry,
                report,
                "entries",
                {"slug": slugify(name)},
                {
                    "name": name,
                    "params_label": row["model_size"],
                    "params": parse_params(row["model_size"]),
                    "notes": f"Layer-sharing scheme: {row['sharing']}.",
                },
            )
            run = _reported_run(report, entry, suite, tasks, row, ranked=False)
            upsert(
                PaperRow,
                report,
                "table rows",
                {"table": "Layer-sharing ablation", "run": run},
                {"group": row["model_size"], "position": position},
            )

        importing_r1.import_r1(r1_rows, suite, report, upsert)
        _import_bnn(report, data_dir)
        _import_latency(report, data_dir)
    return report


def _reported_run(report, entry, suite, tasks, row, ranked):
    citation = row["source"]
    run = upsert(
        EvaluationRun,
        report,
        "runs",
        {"entry": entry, "suite": suite, "kind": EvaluationRun.Kind.REPORTED, "citation": citation},
        {
            "ranked": ranked,
            "avg": float(Decimal(row["avg"]) / 100),
            "benchmark": "full",
            "status": EvaluationRun.Status.DONE,
            "provenance": {
                "paper": PAPER,
                "source": citation,
                "note": "The paper prints one accuracy (%) per task; it is stored "
                "under the task's headline metric.",
            },
        },
    )
    for spec in tasks_spec.TASKS:
        value = float(Decimal(row[spec.csv_column]) / 100)
        upsert(
            TaskScore,
            report,
            "scores",
            {"run": run, "task": tasks[spec.key], "metric": spec.headline},
            {"value": value, "stderr": None, "n": None},
        )
    return run


def _pin_size_classes(report, runs, groups):
    """Pin the paper's group where the size-class ranges would put a row elsewhere."""
    for model, run in runs.items():
        entry = run.entry
        pin = groups.get(model, "")
        computed = Entry(params=entry.params).size_class
        upsert(
            Entry,
            report,
            "entries",
            {"pk": entry.pk},
            {"size_class_pin": "" if pin == computed else pin},
        )


def _import_bnn(report, data_dir):
    suite = bnn_suite()
    tasks = {t.key: t for t in suite.tasks.all()}
    for position, row in enumerate(read_csv("bnn_imagenet_reported.csv", data_dir)):
        entry = upsert(
            Entry,
            report,
            "entries",
            {"slug": slugify(row["network"])},
            {"name": row["network"], "architecture": "binary CNN"},
        )
        run = upsert(
            EvaluationRun,
            report,
            "runs",
            {
                "entry": entry,
                "suite": suite,
                "kind": EvaluationRun.Kind.REPORTED,
                "citation": row["source"],
            },
            {
                "ranked": True,
                "avg": None,
                "benchmark": "full",
                "status": EvaluationRun.Status.DONE,
                "provenance": {"source": row["source"]},
            },
        )
        for key in ("top1", "top5"):
            if row[key]:
                upsert(
                    TaskScore,
                    report,
                    "scores",
                    {"run": run, "task": tasks[key], "metric": key},
                    {"value": float(Decimal(row[key]) / 100), "stderr": None, "n": None},
                )
        upsert(
            PaperRow,
            report,
            "table rows",
            {"table": "BNN ImageNet", "run": run},
            {"group": "", "position": position},
        )


def _import_latency(report, data_dir):
    profile = upsert(
        DeviceProfile,
        report,
        "device profiles",
        {"slug": IPHONE_PROFILE},
        {
            "name": "iPhone 13 (iOS 17.2.1), ExecuTorch MPS, FP16",
            "device_class": "phone",
            "runtime": DeviceProfile.Runtime.EXECUTORCH_MPS,
            "dtype": "float16",
            "reported": True,
            "active": False,
            "description": "The MobileLLM paper's Table 7 device. Execute is the mean of 50 runs.",
        },
    )
    for row in read_csv("mobilellm_latency_reported.csv", data_dir):
        layers = row["layers"]
        entry = Entry.objects.filter(slug=slugify(row["model"])).first()
        if entry is None:
            entry = upsert(
                Entry,
                report,
                "entries",
                {"slug": slugify(row["model"])},
                {"name": row["model"], "layers": int(layers) if layers.isdigit() else None},
            )
        upsert(
            LatencyResult,
            report,
            "latency results",
            {"entry": entry, "profile": profile, "kind": EvaluationRun.Kind.REPORTED},
            {
                "citation": row["source"],
                "layers_label": layers,
                "load_ms": float(row["load_ms"]),
                "init_ms": float(row["init_ms"]),
                "execute_ms": float(row["execute_ms"]),
            },
        )
