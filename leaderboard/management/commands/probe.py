from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from evaluator import checkpoint
from leaderboard import demo, latency, runstate
from leaderboard.models import DeviceProfile, Entry, Probe


class Command(BaseCommand):
    help = (
        "Measure a model's latency on a device profile in the foreground and store it. A probe "
        "of that model already queued (say, waiting for a latency worker) is taken over, and "
        "its submission completes; one that a worker is running now is left to it."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help="the model's slug (see its page URL)")
        parser.add_argument("--profile", default=latency.DEFAULT_PROFILE)

    def handle(self, *args, model, profile, **options):
        entry = Entry.objects.filter(slug=model).first()
        if entry is None:
            raise CommandError(f"no model with slug {model!r}")
        device = DeviceProfile.objects.filter(slug=profile, reported=False).first()
        if device is None:
            known = ", ".join(
                DeviceProfile.objects.filter(reported=False).values_list("slug", flat=True)
            )
            raise CommandError(f"no measurable device profile {profile!r} (known: {known})")
        job = Probe.objects.filter(entry=entry, profile=device, status__in=Probe.ACTIVE).first()
        if job is None:
            job = runstate.queue_probe(entry, device, send=False)
        if job is None or job.status == Probe.Status.RUNNING:
            raise CommandError(
                f"{entry.name} is being probed on {profile} right now (by a latency worker); "
                "its figures will appear on the model page when it ends"
            )
        # The demo checkpoint `make run` prints is fetched again from this site: trusted as
        # `manage.py evaluate` trusts it, with no allow-list to export.
        try:
            allowed = demo.allow_entry_for(latency.source_submission(entry, job.submission_id).url)
        except checkpoint.CheckpointError:
            allowed = None  # run_probe says why, and ends the probe it was given
        extra = [allowed] if allowed else []
        with override_settings(
            CHECKPOINT_ALLOWED_HOSTS=[*settings.CHECKPOINT_ALLOWED_HOSTS, *extra]
        ):
            outcome = latency.run_probe(job.pk)
        if outcome != "ok":
            raise CommandError(outcome)
        result = entry.latency_results.get(profile=device)
        self.stdout.write(
            f"{entry.name} on {profile}: load {result.load_ms:.1f} ms, init {result.init_ms:.1f} "
            f"ms, execute {result.execute_ms:.2f} ms/token ({result.decode_tok_s:.1f} tok/s), "
            f"prefill@{result.prefill_tokens} {result.prefill_ms:.1f} ms, peak RSS "
            f"{result.peak_rss_mb:.0f} MB"
        )
