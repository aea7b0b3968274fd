"""What the leaderboard ranks: suites and tasks, entries (models), their runs and scores,
and where a reported run stands in a paper's table."""

from django.conf import settings
from django.db import models
from django.urls import reverse

from evaluator.tasks_spec import SUITE_SLUG

from ..units import format_params

MOBILELLM_SUITE = SUITE_SLUG


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
    # Our mapping of a reported row to its Hugging Face repo ("owner/name"; blank if none).
    hub_id = models.CharField(max_length=200, blank=True)
    # Contamination flag: the task keys whose train splits the model saw, comma-separated
    # (blank: none known), and where that is said (a source line, not our judgement).
    contamination = models.CharField(
        max_length=200,
        blank=True,
        help_text="Task keys whose train (or test) data the model was trained on, "
        "comma-separated, e.g. openbookqa,piqa. Blank: none known.",
    )
    contamination_source = models.CharField(max_length=300, blank=True)
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
        return self.params_label or format_params(self.params)

    @property
    def contamination_tasks(self) -> list[str]:
        return [t for t in self.contamination.split(",") if t]

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


# The precision every variant is compared to, and the only one ranked unless a page asks
# for another (evaluator.quant.REFERENCE; reported rows count as references).
REFERENCE_PRECISION = "fp32"


class RunQuerySet(models.QuerySet):
    def for_leaderboard(
        self, suite: Suite, benchmark: str = "full", precision: str = REFERENCE_PRECISION
    ) -> "RunQuerySet":
        """Finished runs ranked together: the full-benchmark table (paper and measured), or
        the measured runs on the sample set / a subset, which are never ranked with it; at
        one precision, the reference unless asked (variants never rank among references)."""
        done = self.filter(suite=suite, status=EvaluationRun.Status.DONE, precision=precision)
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
        # A quantized variant the recipe cannot make faithfully: `reason` says why.
        REFUSED = "refused"

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
    # The quantization ladder: a variant is a run of its own (scores, samples, provenance
    # and bundle as any run) at a precision, pointing at the fp32 run it is compared to.
    # Free-form, so that a GGUF type ("Q4_1") can name one too.
    precision = models.CharField(max_length=20, default=REFERENCE_PRECISION)
    scheme = models.CharField(max_length=300, blank=True)
    reference = models.ForeignKey(
        "self", models.CASCADE, null=True, blank=True, related_name="variants"
    )
    # Measured from the quantized tensors: as held while running, and as packed for export.
    weights_bytes = models.BigIntegerField(null=True, blank=True)
    weights_bytes_packed = models.BigIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    # The variant against its reference, document by document (leaderboard/quantization.py),
    # computed once: both runs' per-sample files never change, and pages must not read them
    # per request. Null until computed, and for the reference itself.
    delta_vs_reference = models.JSONField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        indexes = [
            # for_leaderboard(): ranked, finished runs of one suite.
            models.Index(fields=["suite", "ranked", "status"], name="run_leaderboard"),
        ]
        constraints = [
            # One variant per precision of a reference run: a redelivered message or a
            # second submission of the same checkpoint reuses it.
            models.UniqueConstraint(
                fields=["reference", "precision"], name="run_one_variant_per_precision"
            )
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
