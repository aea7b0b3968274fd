from django.core.management.base import BaseCommand, CommandError

from leaderboard import latency
from leaderboard.models import DeviceProfile, Entry


class Command(BaseCommand):
    help = "Measure a model's latency on a device profile in the foreground and store it."

    def add_arguments(self, parser):
        parser.add_argument("model", help="the model's slug (see its page URL)")
        parser.add_argument("--profile", default=latency.DEFAULT_PROFILE)

    def handle(self, *args, model, profile, **options):
        entry = Entry.objects.filter(slug=model).first()
        if entry is None:
            raise CommandError(f"no model with slug {model!r}")
        if not DeviceProfile.objects.filter(slug=profile, reported=False).exists():
            known = ", ".join(
                DeviceProfile.objects.filter(reported=False).values_list("slug", flat=True)
            )
            raise CommandError(f"no measurable device profile {profile!r} (known: {known})")
        outcome = latency.run_probe(entry.pk, profile)
        if outcome != "ok":
            raise CommandError(outcome)
        result = entry.latency_results.get(profile__slug=profile, kind="measured")
        self.stdout.write(
            f"{entry.name} on {profile}: load {result.load_ms:.1f} ms, init {result.init_ms:.1f} "
            f"ms, execute {result.execute_ms:.2f} ms/token ({result.decode_tok_s:.1f} tok/s), "
            f"prefill@{result.prefill_tokens} {result.prefill_ms:.1f} ms, peak RSS "
            f"{result.peak_rss_mb:.0f} MB"
        )
