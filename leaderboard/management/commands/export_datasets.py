from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evaluator import datasets_export, tasks_spec


class Command(BaseCommand):
    help = (
        "Export the eight tasks' evaluation splits from a local Hugging Face datasets cache "
        "into DIR/<task>/<split>.jsonl, for EVAL_DATA=DIR on air-gapped sites."
    )

    def add_arguments(self, parser):
        parser.add_argument("out_dir", type=Path)
        parser.add_argument(
            "--tasks",
            nargs="+",
            choices=tasks_spec.HARNESS_TASKS,
            default=tasks_spec.HARNESS_TASKS,
        )
        parser.add_argument("--cache-dir", default=None, help="datasets cache (default: HF's)")

    def handle(self, *args, out_dir, tasks, cache_dir, **options):
        try:
            written = datasets_export.export(tasks, out_dir, cache_dir=cache_dir)
        except Exception as exc:  # the datasets library raises many kinds
            raise CommandError(f"export failed: {exc}") from exc
        for task, info in written.items():
            self.stdout.write(f"{task}: {info['items']} items -> {info['file']}")
        self.stdout.write(f"Exported {len(tasks)} tasks to {out_dir}; set EVAL_DATA={out_dir}")
