"""The precomputed leaderboard (leaderboard/board.py builds it, leaderboard/boardread.py reads
it): one Board per (suite, benchmark, metric, provenance filter, precision), the variants
whose marks and ranks differ, and its rows in the order the paper prints them. A page reads
its 100 rows by index instead of building every row per request."""

from django.db import models

from .results import REFERENCE_PRECISION, Suite


class DataVersion(models.Model):
    """One row: bumped in the same transaction as any change to what the board shows, so a
    board built at an older version is known to be stale without looking at the data."""

    version = models.PositiveBigIntegerField(default=0)
    changed = models.DateTimeField(auto_now=True)
    # When a debounced rebuild message was sent (a conditional update claims the sending);
    # null once a worker took it. An old value means the message was lost: send another.
    scheduled = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"data version {self.version}"


class Board(models.Model):
    suite = models.ForeignKey(Suite, models.CASCADE, related_name="boards")
    benchmark = models.CharField(max_length=10)
    metric = models.CharField(max_length=10)
    # "" (both), "reported" or "measured": the provenance filter applies before the marks.
    kinds = models.CharField(max_length=20, blank=True)
    # The rung of the quantization ladder ranked: the reference unless a page asks.
    precision = models.CharField(max_length=20, default=REFERENCE_PRECISION)
    # The DataVersion and the settings (size classes, row format) it was built from.
    version = models.BigIntegerField(default=-1)
    fingerprint = models.CharField(max_length=64, blank=True)
    built = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    # Row counts by "size_class|contaminated", so an unsearched page needs no COUNT(*).
    counts = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["suite", "benchmark", "metric", "kinds", "precision"],
                name="board_unique_variant",
            )
        ]

    def __str__(self) -> str:
        return f"{self.benchmark}/{self.metric}/{self.kinds or 'all'} at v{self.version}"


class BoardRow(models.Model):
    board = models.ForeignKey(Board, models.CASCADE, related_name="rows")
    # The paper's layout: size classes in order, best average first, then by name.
    position = models.PositiveIntegerField()
    size_pos = models.PositiveSmallIntegerField()
    size_class = models.CharField(max_length=20, blank=True)
    contaminated = models.BooleanField(default=False)
    name = models.CharField(max_length=200)
    name_key = models.CharField(max_length=200)  # lower-cased, the name sort's key
    params = models.BigIntegerField(null=True)
    layers = models.PositiveIntegerField(null=True)
    avg = models.FloatField(null=True)  # percent
    # Everything a page, CSV or JSON row shows (boardread.to_row), marks and ranks included.
    data = models.JSONField()

    class Meta:
        constraints = [
            # Also the index of `/` in its default order: a page is a range of positions.
            models.UniqueConstraint(fields=["board", "position"], name="boardrow_unique_position")
        ]
        indexes = [
            # The size-class filter in the default order.
            models.Index(fields=["board", "size_class", "position"], name="boardrow_size"),
            # Sorting by the average within size classes (the first click on "Avg.").
            models.Index(fields=["board", "size_pos", "avg"], name="boardrow_class_avg"),
        ]

    def __str__(self) -> str:
        return f"{self.board_id} #{self.position} {self.name}"
