import sys
from contextlib import contextmanager

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from evaluator import checkpoint, tasks_spec
from leaderboard import demo, intake, pipeline
from leaderboard.models import Submission


class Command(BaseCommand):
    help = (
        "Evaluate a checkpoint in the foreground (the same pipeline as the web form), store "
        "the results and print the model's page URL."
    )

    def add_arguments(self, parser):
        parser.add_argument("url", help="org/name[@revision], a Hub URL, or an archive URL")
        parser.add_argument("--name", help="display name (default: from the URL)")
        parser.add_argument("--notes", default="")
        parser.add_argument(
            "--tasks",
            nargs="+",
            choices=tasks_spec.HARNESS_TASKS,
            default=tasks_spec.HARNESS_TASKS,
        )
        parser.add_argument(
            "--data", default=None, help="sample, hub, or a directory (default: EVAL_DATA setting)"
        )
        parser.add_argument("--limit", type=int, default=None, help="items per task")

    def handle(self, *args, url, **options):
        entry = demo.allow_entry_for(url)  # the demo `make run` prints, and only it
        if entry is None:
            return self._evaluate(url, **options)
        with override_settings(
            CHECKPOINT_ALLOWED_HOSTS=[*settings.CHECKPOINT_ALLOWED_HOSTS, entry]
        ):
            return self._evaluate(url, **options)

    def _evaluate(self, url, *, name, notes, tasks, data, limit, **options):
        try:
            source = intake.resolve_source(url)
        except checkpoint.CheckpointError as exc:
            raise CommandError(str(exc)) from exc
        name = name or (source.repo_id or url.rstrip("/").rsplit("/", 1)[-1])[:100]
        sub, created = intake.create_submission(
            source,
            url,
            name,
            notes,
            data=data or settings.EVAL_DATA,
            limit=limit,
            enqueue=False,
            tasks=tasks,
        )
        if not created:
            self.stdout.write(f"Already submitted as #{sub.pk} ({sub.status}).")
        else:
            with only_our_bar():
                status = pipeline.run(sub.pk, progress=self._bar)
            sys.stderr.write("\n")
            sub.refresh_from_db()
            if status not in (Submission.Status.DONE, Submission.Status.PROBING):
                raise CommandError(f"submission #{sub.pk} {status}: {sub.error}")
            if status == Submission.Status.PROBING:
                self.stdout.write(
                    "Evaluation stored; latency probes are queued for the latency workers."
                )
        if sub.entry_id:
            self.stdout.write(f"{settings.SITE_URL.rstrip('/')}{sub.entry.get_absolute_url()}")

    def _bar(self, index: int, count: int, task: str, fraction: float) -> None:
        done = (index + fraction) / max(count, 1)
        width = 30
        filled = int(done * width)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done:6.1%} "
            f"{task:<14} ({index + 1}/{count})"
        )
        sys.stderr.flush()


@contextmanager
def only_our_bar():
    """lm-eval, datasets and transformers draw tqdm bars on the same terminal line as ours,
    and the two interleave into noise: while the command evaluates, theirs are switched off
    (lm-eval passes disable=False explicitly, so tqdm's own switches are not enough)."""
    from tqdm import std

    original = std.tqdm.__init__

    def quiet(self, *args, **kwargs):
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    std.tqdm.__init__ = quiet
    try:
        yield
    finally:
        std.tqdm.__init__ = original
