"""Device profiles and the latency measured (or reported) on them."""

from django.db import models

from .results import REFERENCE_PRECISION, Entry, EvaluationRun


class DeviceProfile(models.Model):
    class Runtime(models.TextChoices):
        EAGER = "eager", "PyTorch eager"
        EXECUTORCH = "executorch", "ExecuTorch (XNNPACK)"
        # The paper's iPhone: reported figures only, no worker runs it.
        EXECUTORCH_MPS = "executorch-mps", "ExecuTorch (MPS backend)"

    class Dtype(models.TextChoices):
        FLOAT32 = "float32"
        BFLOAT16 = "bfloat16"
        FLOAT16 = "float16"

    # What the probe can measure; the rest are reported only.
    PROBED_RUNTIMES = [Runtime.EAGER, Runtime.EXECUTORCH]

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    device_class = models.CharField(max_length=40, default="cpu")
    runtime = models.CharField(max_length=100, choices=Runtime.choices, default=Runtime.EAGER)
    dtype = models.CharField(max_length=20, choices=Dtype.choices, default=Dtype.FLOAT32)
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
    # The spread behind the median (evaluator.latency_stats): fastest token, samples taken,
    # coefficient of variation, the median's 95 % CI half-width over the median, and whether
    # that reached the probe's target before its time budget ended (empty when reported).
    decode_ms_min = models.FloatField(null=True, blank=True)
    decode_n = models.PositiveIntegerField(null=True, blank=True)
    decode_cv = models.FloatField(null=True, blank=True)
    decode_rel_ci = models.FloatField(null=True, blank=True)
    decode_stable = models.BooleanField(null=True, blank=True)
    decode_tok_s = models.FloatField(null=True, blank=True)
    peak_rss_mb = models.FloatField(null=True, blank=True)
    file_size_mb = models.FloatField(null=True, blank=True)
    roofline_frac = models.FloatField(null=True, blank=True)
    samples = models.JSONField(default=dict, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    # The model at one rung of its quantization ladder (EvaluationRun.precision); pages
    # other than the ladder's show the reference.
    precision = models.CharField(max_length=20, default=REFERENCE_PRECISION)

    class Meta:
        ordering = ["profile", "entry__name"]
        constraints = [
            # One current measurement per model, profile and precision: a re-probe replaces it.
            models.UniqueConstraint(
                fields=["entry", "profile", "precision"],
                name="latency_one_result_per_entry_profile_precision",
            )
        ]

    def __str__(self) -> str:
        return f"{self.entry} on {self.profile}"
