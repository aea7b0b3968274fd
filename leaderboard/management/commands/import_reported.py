from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from leaderboard.importing import DATA_DIR, ImportProblem, import_reported


class Command(BaseCommand):
    help = "Import the published results the project ships (MobileLLM Tables 3, 7, 8, ...)."

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, default=DATA_DIR)

    def handle(self, *args, data_dir: Path, **options):
        try:
            report = import_reported(data_dir)
        except (ImportProblem, FileNotFoundError, KeyError) as exc:
            raise CommandError(f"nothing imported: {exc}") from exc
        self.stdout.write(f"Imported reported results: {report}")
        if not report.changed:
            self.stdout.write("Nothing changed: the database already held these results.")
