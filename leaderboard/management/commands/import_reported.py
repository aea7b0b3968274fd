from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from leaderboard.importing import DATA_DIR, ImportProblem, Report, import_reported

# What importing.Report counts, as a reader would name it (singular, plural).
NOUNS = {
    "entries": ("model", "models"),
    "runs": ("set of results", "sets of results"),
    "scores": ("score", "scores"),
    "table rows": ("paper-table row", "paper-table rows"),
    "device profiles": ("device profile", "device profiles"),
    "latency results": ("latency result", "latency results"),
}


def _some(counts: dict[str, int]) -> str:
    parts = []
    for what, n in counts.items():
        singular, plural = NOUNS.get(what, (what, what))
        parts.append(f"{n} {singular if n == 1 else plural}")
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def describe(report: Report) -> list[str]:
    """The report in sentences: what was added, what was brought up to date. Rows the import
    met again unchanged (a model in two tables, a second import) are not news."""
    by_outcome: dict[str, dict[str, int]] = {"created": {}, "updated": {}}
    for key, n in report.counts.items():
        what, _, outcome = key.rpartition(" ")
        if outcome in by_outcome:
            by_outcome[outcome][what] = n
    order = list(NOUNS)
    lines = []
    for outcome, verb in (("created", "Added"), ("updated", "Filled in or corrected")):
        counts = dict(
            sorted(
                by_outcome[outcome].items(),
                key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order),
            )
        )
        if counts:
            lines.append(f"{verb}: {_some(counts)}.")
    return lines


class Command(BaseCommand):
    help = "Import the published results the project ships (MobileLLM Tables 3, 7, 8, ...)."

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, default=DATA_DIR)

    def handle(self, *args, data_dir: Path, **options):
        try:
            report = import_reported(data_dir)
        except (ImportProblem, FileNotFoundError, KeyError) as exc:
            raise CommandError(f"nothing imported: {exc}") from exc
        if not report.changed:
            self.stdout.write("Nothing changed: the database already held these results.")
            return
        self.stdout.write(f"Imported the published results in {data_dir.name}/:")
        for line in describe(report):
            self.stdout.write(f"  {line}")
