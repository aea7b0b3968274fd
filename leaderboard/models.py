from django.conf import settings
from django.db import models
from django.urls import reverse

MOBILELLM_SUITE = "mobilellm-csr"


class Suite(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # A suite we only import (e.g. ImageNet of binary networks): nothing is ever measured.
    reported_only = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.name


class Task(models.Model):
    suite = models.ForeignKey(Suite, models.CASCADE, related_name="tasks")
    key = models.SlugField(max_length=64)
    harness_name = models.CharField(max_length=100, blank=True)
    label = models.CharField(max_length=40)
    position = models.PositiveSmallIntegerField()
    headline_metric = models.CharField(max_length=40, default="acc")

    class Meta:
        ordering = ["suite", "position"]
        constraints = [
            models.UniqueConstraint(fields=["suite", "key"], name="task_unique_key_per_suite")
        ]

    def __str__(self) -> str:
        return f"{self.suite.slug}/{self.key}"


class Entry(models.Model):
    """A model on the leaderboard: one checkpoint, or one row of a paper's table."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    params = models.BigIntegerField(null=True, blank=True)
    params_label = models.CharField(max_length=20, blank=True)
    params_non_embedding = models.BigIntegerField(null=True, blank=True)
    layers = models.PositiveIntegerField(null=True, blank=True)
    architecture = models.CharField(max_length=100, blank=True)
    source_url = models.CharField(max_length=2000, blank=True)
    revision = models.CharField(max_length=64, blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True)
    license = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True)
    # Pinned size class; empty means "from params and settings.SIZE_CLASSES".
    size_class_pin = models.CharField(max_length=20, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "entries"
        ordering = ["name"]
        indexes = [
            # Duplicate submissions are found by content hash.
            models.Index(fields=["content_sha256"], name="entry_content_sha256"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("leaderboard-model", args=[self.slug])

    @property
    def params_display(self) -> str:
        from .suites import format_params

        return self.params_label or format_params(self.params)

    @property
    def size_class(self) -> str:
        if self.size_class_pin:
            return self.size_class_pin
        return size_class_for(self.params)


def size_class_for(params: int | None) -> str:
    if params is None:
        return ""
    for label, low, high in settings.SIZE_CLASSES:
        if low <= params < high:
            return label
    return ""


class RunQuerySet(models.QuerySet):
    def for_leaderboard(self, suite: Suite, benchmark: str = "full") -> "RunQuerySet":
        """Finished runs ranked together: the full-benchmark table (paper and measured), or
        the measured runs on the sample set / a subset, which are never ranked with it."""
        done = self.filter(suite=suite, status=EvaluationRun.Status.DONE)
        if benchmark == EvaluationRun.Benchmark.FULL:
            return done.filter(ranked=True)
        return done.filter(kind=EvaluationRun.Kind.MEASURED, benchmark=benchmark)


class EvaluationRun(models.Model):
    class Kind(models.TextChoices):
        REPORTED = "reported"
        MEASURED = "measured"

    class Benchmark(models.TextChoices):
        FULL = "full", "full benchmark"
        SAMPLE = "sample", "sample set"
        LIMITED = "limited", "limited (subset)"

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    entry = models.ForeignKey(Entry, models.CASCADE, related_name="runs")
    suite = models.ForeignKey(Suite, models.PROTECT, related_name="runs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DONE)
    citation = models.CharField(max_length=300, blank=True)
    benchmark = models.CharField(max_length=10, choices=Benchmark.choices, default="full")
    # Only full-benchmark runs of the main table are ranked; ablations and sample-set runs
    # are shown on their own.
    ranked = models.BooleanField(default=True)
    avg = models.FloatField(null=True, blank=True)
    provenance = models.JSONField(default=dict, blank=True)
    samples_file = models.FileField(upload_to="samples/", blank=True)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        indexes = [
            # for_leaderboard(): ranked, finished runs of one suite.
            models.Index(fields=["suite", "ranked", "status"], name="run_leaderboard"),
        ]

    def __str__(self) -> str:
        return f"{self.entry} · {self.kind} · {self.citation or self.pk}"

    @property
    def provenance_label(self) -> str:
        return provenance_label(self.kind, self.citation, self.benchmark, self.provenance)


def provenance_label(kind: str, citation: str, benchmark: str, provenance: dict) -> str:
    """One line saying where a number comes from: the paper's table, or how we measured it."""
    if kind == EvaluationRun.Kind.REPORTED:
        return f"reported: {citation}"
    harness = provenance.get("lm_eval_version", "?")
    device = provenance.get("device", "?")
    label = EvaluationRun.Benchmark(benchmark).label
    return f"measured: lm-eval {harness}, {label}, 0-shot, {device}"


class TaskScore(models.Model):
    run = models.ForeignKey(EvaluationRun, models.CASCADE, related_name="scores")
    task = models.ForeignKey(Task, models.PROTECT, related_name="scores")
    metric = models.CharField(max_length=40)
    # Fractions in [0, 1] for accuracies, as lm-eval returns them; pages show percent.
    value = models.FloatField()
    stderr = models.FloatField(null=True, blank=True)
    n = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "task", "metric"], name="score_unique_run_task_metric"
            )
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.task.key} {self.metric}={self.value}"


class PaperRow(models.Model):
    """Where a reported run stands in a paper's table, so the table can be shown as printed."""

    run = models.ForeignKey(EvaluationRun, models.CASCADE, related_name="paper_rows")
    table = models.CharField(max_length=100)
    group = models.CharField(max_length=40, blank=True)
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["table", "position"]
        constraints = [
            models.UniqueConstraint(fields=["table", "run"], name="paperrow_unique_run_per_table")
        ]

    def __str__(self) -> str:
        return f"{self.table} {self.group} #{self.position}"


class DeviceProfile(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    device_class = models.CharField(max_length=40, default="cpu")
    runtime = models.CharField(max_length=100, default="eager")
    dtype = models.CharField(max_length=20, default="float32")
    threads = models.PositiveSmallIntegerField(null=True, blank=True)
    # Reported profiles come from papers; no worker ever runs them.
    reported = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    bandwidth_gb_s = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return f"latency.{self.slug}"


class LatencyResult(models.Model):
    entry = models.ForeignKey(Entry, models.CASCADE, related_name="latency_results")
    profile = models.ForeignKey(DeviceProfile, models.PROTECT, related_name="results")
    kind = models.CharField(max_length=10, choices=EvaluationRun.Kind.choices)
    citation = models.CharField(max_length=300, blank=True)
    layers_label = models.CharField(max_length=40, blank=True)
    load_ms = models.FloatField(null=True, blank=True)
    init_ms = models.FloatField(null=True, blank=True)
    # What the paper's Table 7 calls Execute: one decoded token (for us: decode p50).
    execute_ms = models.FloatField(null=True, blank=True)
    first_forward_ms = models.FloatField(null=True, blank=True)
    prefill_ms = models.FloatField(null=True, blank=True)
    prefill_tokens = models.PositiveIntegerField(null=True, blank=True)
    decode_ms_p50 = models.FloatField(null=True, blank=True)
    decode_ms_p90 = models.FloatField(null=True, blank=True)
    decode_tok_s = models.FloatField(null=True, blank=True)
    peak_rss_mb = models.FloatField(null=True, blank=True)
    file_size_mb = models.FloatField(null=True, blank=True)
    roofline_frac = models.FloatField(null=True, blank=True)
    samples = models.JSONField(default=dict, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["profile", "entry__name"]

    def __str__(self) -> str:
        return f"{self.entry} on {self.profile}"


class SubmissionQuerySet(models.QuerySet):
    def active(self) -> "SubmissionQuerySet":
        return self.filter(status__in=Submission.ACTIVE)

    def from_client(self, ip: str, since) -> "SubmissionQuerySet":
        return self.filter(client_ip=ip, created__gte=since)


class Submission(models.Model):
    """A request from the web form (or `manage.py evaluate`) to evaluate one checkpoint."""

    class Status(models.TextChoices):
        PENDING = "pending"
        FETCHING = "fetching"
        EVALUATING = "evaluating"
        PROBING = "probing"
        DONE = "done"
        FAILED = "failed"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    RUNNING = [Status.FETCHING, Status.EVALUATING, Status.PROBING]
    ACTIVE = [Status.PENDING, *RUNNING]
    ENDED = [Status.DONE, Status.FAILED, Status.REJECTED, Status.CANCELLED]

    url = models.CharField(max_length=2000)
    source_kind = models.CharField(max_length=10)  # "hub" or "archive"
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
    task_index = models.PositiveSmallIntegerField(default=0)
    task_name = models.CharField(max_length=64, blank=True)
    task_fraction = models.FloatField(default=0)
    error = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    celery_task_id = models.CharField(max_length=64, blank=True)

    entry = models.ForeignKey(
        Entry, models.SET_NULL, null=True, blank=True, related_name="submissions"
    )
    run = models.ForeignKey(
        EvaluationRun, models.SET_NULL, null=True, blank=True, related_name="submissions"
    )
    duplicate_of = models.ForeignKey("self", models.SET_NULL, null=True, blank=True)

    # Latency profiles whose probe is still to come after the evaluation.
    probes_pending = models.JSONField(default=list, blank=True)
    probe_resends = models.PositiveSmallIntegerField(default=0)

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
            # The watchdog's scan for running submissions with a stale heartbeat.
            models.Index(fields=["status", "heartbeat"], name="submission_status_heartbeat"),
            # Rate limiting: recent submissions of one client.
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
    def progress(self) -> float:
        """Overall fraction done: tasks finished plus the fraction of the current one."""
        if self.status == self.Status.DONE:
            return 1.0
        count = len(self.tasks) or 1
        if self.status in (self.Status.PENDING, self.Status.FETCHING):
            return 0.0
        return min(1.0, (self.task_index + self.task_fraction) / count)
