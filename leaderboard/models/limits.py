"""Rate limits' state: one row per limited key, locked while a hit is counted."""

from django.db import models


class Throttle(models.Model):
    """The recent hits on one key ("submit:<client network>", "admin-login:<client
    network>"). Checking and counting a hit is one step under this row's lock
    (leaderboard/throttle.py), so simultaneous requests cannot all pass a limit."""

    key = models.CharField(max_length=200, unique=True)
    hits = models.JSONField(default=list)  # Unix times of the hits still in the window
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # throttle.expire(): rows nobody has hit for a day.
            models.Index(fields=["updated"], name="throttle_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({len(self.hits)} hits)"
