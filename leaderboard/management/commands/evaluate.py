import argparse
import sys
from contextlib import contextmanager

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from evaluator import checkpoint, quant, tasks_spec
from leaderboard import demo, intake, latency, pipeline, runstate
from leaderboard.models import Probe, Submission


class Command(BaseCommand):
    help = (
        "Evaluate a checkpoint in the foreground (the same pipeline as the web form), store "
        "the results and print the model's page URL."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "url", help="org/name[@revision], a Hub URL, an archive URL or a .gguf URL"
        )
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
        parser.add_argument(
            "--precisions",
            default=None,
            help=f"comma-separated, of {','.join(quant.RECIPES)} (fp32, the reference, always "
            "runs; default: the EVAL_PRECISIONS setting)",
        )
        parser.add_argument(
            "--probe",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="measure latency here once evaluated (default: unless a latency worker "
            "listens on the profile's queue); --no-probe ends the submission done with its "
            "probes pending, for a worker or `manage.py probe`",
        )

    def handle(self, *args, url, **options):
        entry = demo.allow_entry_for(url)  # the demo `make run` prints, and only it
        if entry is None:
            return self._evaluate(url, **options)
        with override_settings(
            CHECKPOINT_ALLOWED_HOSTS=[*settings.CHECKPOINT_ALLOWED_HOSTS, entry]
        ):
            return self._evaluate(url, **options)

    def _evaluate(self, url, *, name, notes, tasks, data, limit, probe, precisions, **options):
        try:
            precisions = quant.parse_precisions(precisions or settings.EVAL_PRECISIONS)
            source = intake.resolve_source(url)
        except (checkpoint.CheckpointError, ValueError) as exc:
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
            precisions=precisions,
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
                self._probe(sub, probe)
                sub.refresh_from_db()
        if sub.entry_id:
            self.stdout.write(f"{settings.SITE_URL.rstrip('/')}{sub.entry.get_absolute_url()}")

    def _probe(self, sub: Submission, wanted: bool | None) -> None:
        """Run the submission's pending probes here unless a latency worker will: with no
        worker on a profile's queue the submission would otherwise stay probing for ever.
        --no-probe ends it done, its probes listed as pending (/queue/ shows them)."""
        listening = set() if wanted else latency_queues_listened()
        for job in sub.probes.select_related("profile").filter(status__in=Probe.ACTIVE):
            slug, queue = job.profile.slug, f"latency.{job.profile.slug}"
            how = f"manage.py probe {sub.entry.slug} --profile {slug}"
            if job.status == Probe.Status.RUNNING:  # a worker was quicker than this loop
                self.stdout.write(f"Evaluation stored; the worker on {queue} is measuring latency.")
            elif wanted is False:
                self.stdout.write(
                    f"Evaluation stored; the latency probe on {slug} is pending ({how})."
                )
            elif wanted is None and queue in listening:
                self.stdout.write(
                    f"Evaluation stored; the latency probe on {slug} is queued for the worker "
                    f"on {queue} (or run: {how})."
                )
            else:
                self.stdout.write(f"Measuring latency on {slug} here…")
                outcome = latency.run_probe(job.pk)
                if outcome != "ok":
                    self.stderr.write(outcome)
        if wanted is False:
            runstate.move(sub.pk, Submission.Status.DONE, Submission.Status.PROBING)

    def _bar(self, index: int, count: int, task: str, fraction: float) -> None:
        done = (index + fraction) / max(count, 1)
        width = 30
        filled = int(done * width)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done:6.1%} "
            f"{task:<14} ({index + 1}/{count})"
        )
        sys.stderr.flush()


def latency_queues_listened() -> set[str]:
    """The latency.* queues some running Celery worker consumes; empty when none answers
    within a second (or the broker is down): then nobody will take a probe."""
    from config.celery import app

    try:
        replies = app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception:  # an unreachable broker means no worker, whatever the error
        return set()
    return {q["name"] for queues in replies.values() for q in queues or []}


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
