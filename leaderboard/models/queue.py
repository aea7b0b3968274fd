"""The queue's state: submissions (evaluations) and probes (latency measurements)."""

from django.db import models
from django.urls import reverse

from .devices import DeviceProfile
from .results import Entry, EvaluationRun


class SubmissionQuerySet(models.QuerySet):
    def active(self) -> "SubmissionQuerySet":
        return self.filter(status__in=Submission.ACTIVE)


class Submission(models.Model):
    """A request from the web form (or `manage.py evaluate`) to evaluate one checkpoint."""

    class Status(models.TextChoices):
        PENDING = "pending"
        FETCHING = "fetching"
        EVALUATING = "evaluating"
        # Scores stored and on the leaderboard; latency probes still to answer.
        PROBING = "probing", "evaluated, probing"
        DONE = "done"
        FAILED = "failed"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    RUNNING = [Status.FETCHING, Status.EVALUATING, Status.PROBING]
    ACTIVE = [Status.PENDING, *RUNNING]
    ENDED = [Status.DONE, Status.FAILED, Status.REJECTED, Status.CANCELLED]

    class SourceKind(models.TextChoices):
        HUB = "hub", "Hugging Face Hub"
        ARCHIVE = "archive", "archive URL"
        GGUF = "gguf", "GGUF file URL"

    url = models.CharField(max_length=2000)  # what the submitter typed
    source_kind = models.CharField(max_length=10, choices=SourceKind.choices)
    # The parsed source's canonical URL (a Hub repo page, the archive or .gguf URL): what the worker
    # fetches, so it never parses the submitter's text again.
    source_url = models.CharField(max_length=2000, blank=True)
    repo_id = models.CharField(max_length=200, blank=True)
    revision = models.CharField(max_length=200, blank=True)
    commit = models.CharField(max_length=64, blank=True)
    # hub:<repo>@<commit> or url:<url>: the same checkpoint twice maps to the same key.
    checkpoint_key = models.CharField(max_length=2100)
    name = models.CharField(max_length=100)
    notes = models.TextField(blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    # Lets the submitter (who holds it in their session) cancel without an account.
    secret = models.CharField(max_length=64)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    data = models.CharField(max_length=500, default="sample")
    limit = models.PositiveIntegerField(null=True, blank=True)
    tasks = models.JSONField(default=list)
    # The quantization ladder asked for (evaluator.quant recipes), the reference first.
    precisions = models.JSONField(default=list)
    task_index = models.PositiveSmallIntegerField(default=0)
    task_name = models.CharField(max_length=64, blank=True)
    task_fraction = models.FloatField(default=0)
    error = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)  # public, like error: see leaderboard/redaction.py
    # The same log with tracebacks and server paths, for operators (the admin) only.
    operator_log = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    celery_task_id = models.CharField(max_length=64, blank=True)

    entry = models.ForeignKey(
        Entry, models.SET_NULL, null=True, blank=True, related_name="submissions"
    )
    run = models.ForeignKey(
        EvaluationRun, models.SET_NULL, null=True, blank=True, related_name="submissions"
    )
    duplicate_of = models.ForeignKey("self", models.SET_NULL, null=True, blank=True)

    created = models.DateTimeField(auto_now_add=True)
    enqueued = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    objects = SubmissionQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        constraints = [
            # One live evaluation per checkpoint: twenty identical submissions at once
            # cannot all insert; the losers link to the winner.
            models.UniqueConstraint(
                fields=["checkpoint_key"],
                condition=models.Q(status__in=["pending", "fetching", "evaluating", "probing"]),
                name="submission_one_active_per_checkpoint",
            )
        ]
        indexes = [
            # runstate.watchdog(): running submissions whose heartbeat went stale.
            models.Index(
                fields=["heartbeat"],
                condition=models.Q(status__in=["fetching", "evaluating"]),
                name="submission_running_heartbeat",
            ),
            # runstate.watchdog(): pending submissions whose message may have been lost.
            models.Index(
                fields=["enqueued"],
                condition=models.Q(status="pending"),
                name="submission_pending_enqueued",
            ),
            # Looking into abuse: recent submissions of one client (the rate limit itself
            # counts in Throttle rows).
            models.Index(fields=["client_ip", "created"], name="submission_client_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("leaderboard-submission", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def probes_pending(self) -> list[str]:
        """Slugs of the device profiles whose probe of this submission has not ended."""
        return [p.profile.slug for p in self.probes.all() if p.status in Probe.ACTIVE]

    @property
    def task_count(self) -> int:
        """Tasks to run in all: every task at every precision of the ladder."""
        return len(self.tasks) * max(len(self.precisions), 1)

    @property
    def progress(self) -> float:
        """Overall fraction done: tasks finished plus the fraction of the current one."""
        if self.status == self.Status.DONE:
            return 1.0
        count = self.task_count or 1
        if self.status in (self.Status.PENDING, self.Status.FETCHING):
            return 0.0  # task_fraction holds the download's fraction then, not a task's
        if self.entry_id is None:
            return 0.0  # ended before its evaluation began (the entry is set as it begins)
        return min(1.0, (self.task_index + self.task_fraction) / count)


class Probe(models.Model):
    """One latency measurement to take: a model on a device profile.

    The row is the probe's state (as a Submission is an evaluation's); what it measures is
    stored as the entry's LatencyResult on that profile."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    ACTIVE = [Status.PENDING, Status.RUNNING]

    entry = models.ForeignKey(Entry, models.CASCADE, related_name="probes")
    profile = models.ForeignKey(DeviceProfile, models.CASCADE, related_name="probes")
    # The submission waiting for it; empty for a re-probe from the admin or the terminal.
    submission = models.ForeignKey(
        Submission, models.SET_NULL, null=True, blank=True, related_name="probes"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    sends = models.PositiveSmallIntegerField(default=0)  # messages sent for it
    attempts = models.PositiveSmallIntegerField(default=0)  # times a worker took it
    created = models.DateTimeField(auto_now_add=True)
    enqueued = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created"]
        constraints = [
            # One probe of a model on a profile at a time: two would measure each other.
            models.UniqueConstraint(
                fields=["entry", "profile"],
                condition=models.Q(status__in=["pending", "running"]),
                name="probe_one_active_per_entry_profile",
            )
        ]
        indexes = [
            # runstate.watchdog(): pending probes no worker took, running ones gone quiet.
            models.Index(
                fields=["status", "heartbeat"],
                condition=models.Q(status__in=["pending", "running"]),
                name="probe_active_heartbeat",
            ),
        ]

    def __str__(self) -> str:
        return f"probe #{self.pk} {self.entry} on {self.profile} ({self.status})"
