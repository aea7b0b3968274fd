from django.core.management.base import BaseCommand

from leaderboard.demo import build_demo


class Command(BaseCommand):
    help = "Build the offline demo checkpoint (a tiny random-weight model) under MEDIA_ROOT."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="rebuild even if it exists")

    def handle(self, *args, force: bool, **options):
        path = build_demo(force=force)
        self.stdout.write(f"Demo checkpoint: {path}")
