from django.contrib import admin

from . import runstate
from .forms import ThrottledAdminLoginForm
from .models import (
    DeviceProfile,
    Entry,
    EvaluationRun,
    LatencyResult,
    PaperRow,
    Probe,
    Submission,
    Suite,
    Task,
    TaskScore,
    Throttle,
)

# Password guessing against /admin/ is throttled per client network (forms.py).
admin.site.login_form = ThrottledAdminLoginForm


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0


@admin.register(Suite)
class SuiteAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "reported_only"]
    inlines = [TaskInline]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["key", "suite", "label", "harness_name", "headline_metric", "position"]
    list_filter = ["suite"]


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    list_display = [
        "name", "params_label", "params", "layers", "size_class_pin", "contamination", "created"
    ]  # fmt: skip
    # The contamination flag is settable here for any entry (with its source).
    list_filter = [("contamination", admin.EmptyFieldListFilter)]
    search_fields = ["name", "slug", "source_url", "hub_id"]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["reprobe"]

    @admin.action(description="Re-probe latency on every active device profile")
    def reprobe(self, request, queryset):
        profiles = list(DeviceProfile.objects.filter(active=True, reported=False))
        count = busy = 0
        for entry in queryset.filter(submissions__run__isnull=False).distinct():
            for profile in profiles:
                if runstate.queue_probe(entry, profile) is None:
                    busy += 1
                else:
                    count += 1
        self.message_user(
            request,
            f"Queued {count} latency probes on "
            f"{', '.join(p.slug for p in profiles) or 'no profile'}"
            + (f"; {busy} already queued or running." if busy else "."),
        )


class TaskScoreInline(admin.TabularInline):
    model = TaskScore
    extra = 0
    raw_id_fields = ["task"]


class PaperRowInline(admin.TabularInline):
    model = PaperRow
    extra = 0


@admin.register(EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin):
    list_display = ["entry", "suite", "kind", "precision", "benchmark", "ranked", "status", "avg",
                    "created"]  # fmt: skip
    list_filter = ["suite", "kind", "precision", "benchmark", "ranked", "status"]
    search_fields = ["entry__name", "citation"]
    raw_id_fields = ["entry", "reference"]
    inlines = [TaskScoreInline, PaperRowInline]


@admin.register(TaskScore)
class TaskScoreAdmin(admin.ModelAdmin):
    list_display = ["run", "task", "metric", "value", "stderr", "n"]
    list_filter = ["task__suite", "metric"]
    raw_id_fields = ["run"]


@admin.register(PaperRow)
class PaperRowAdmin(admin.ModelAdmin):
    list_display = ["table", "group", "position", "run"]
    list_filter = ["table"]
    raw_id_fields = ["run"]


@admin.register(DeviceProfile)
class DeviceProfileAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name",
        "device_class",
        "runtime",
        "dtype",
        "threads",
        "active",
        "reported",
        "bandwidth_gb_s",
    ]


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ["pk", "name", "status", "source_kind", "data", "attempts", "created"]
    list_filter = ["status", "source_kind", "data"]
    search_fields = ["name", "url", "checkpoint_key"]
    raw_id_fields = ["entry", "run", "duplicate_of"]
    readonly_fields = ["operator_log"]  # tracebacks and paths: never shown to the public


@admin.register(LatencyResult)
class LatencyResultAdmin(admin.ModelAdmin):
    list_display = ["entry", "profile", "kind", "load_ms", "init_ms", "execute_ms", "created"]
    list_filter = ["profile", "kind"]
    raw_id_fields = ["entry"]


@admin.register(Probe)
class ProbeAdmin(admin.ModelAdmin):
    list_display = ["pk", "entry", "profile", "status", "attempts", "submission", "created"]
    list_filter = ["status", "profile"]
    raw_id_fields = ["entry", "submission"]


@admin.register(Throttle)
class ThrottleAdmin(admin.ModelAdmin):
    """Rate-limit counts: deleting a row lets that address submit or sign in again at once."""

    list_display = ["key", "hit_count", "updated"]
    search_fields = ["key"]
    readonly_fields = ["key", "hits", "updated"]

    @admin.display(description="hits in the window")
    def hit_count(self, obj: Throttle) -> int:
        return len(obj.hits)

    def has_add_permission(self, request) -> bool:
        return False
