from django.urls import path

from . import (
    bundles,
    compare_views,
    latency_views,
    openapi,
    provenance,
    quantization_views,
    reproduced_views,
    submissions,
    views,
)

urlpatterns = [
    path("", views.index, name="leaderboard-index"),
    path("leaderboard.csv", views.leaderboard_csv, name="leaderboard-csv"),
    path("leaderboard.json", views.leaderboard_json, name="leaderboard-json"),
    path(
        "charts/accuracy-vs-params.json", views.chart_params_json, name="leaderboard-chart-params"
    ),
    path("charts/tasks.json", views.chart_tasks_json, name="leaderboard-chart-tasks"),
    path("reproduced/", reproduced_views.reproduced_page, name="leaderboard-reproduced"),
    path("reproduced.json", reproduced_views.reproduced_json, name="leaderboard-reproduced-json"),
    path("reproduced.csv", reproduced_views.reproduced_csv, name="leaderboard-reproduced-csv"),
    path("compare/", compare_views.compare_page, name="leaderboard-compare"),
    path("compare.json", compare_views.compare_json, name="leaderboard-compare-json"),
    path("compare.csv", compare_views.compare_csv, name="leaderboard-compare-csv"),
    path("models/<slug:slug>/", views.model_detail, name="leaderboard-model"),
    path(
        "models/<slug:slug>/runs/<int:run_id>/bundle.zip",
        bundles.bundle_zip,
        name="leaderboard-run-bundle",
    ),
    path(
        "models/<slug:slug>/runs/<int:run_id>/samples.zip",
        bundles.samples_zip,
        name="leaderboard-run-samples",
    ),
    path("models/<slug:slug>.json", views.model_json, name="leaderboard-model-json"),
    path(
        "models/<slug:slug>/runs/<int:run_id>/provenance.json",
        provenance.provenance_json,
        name="leaderboard-run-provenance",
    ),
    path("paper/", views.paper_index, name="leaderboard-paper-index"),
    path("paper/<slug:table_slug>/", views.paper_detail, name="leaderboard-paper"),
    path("paper/<slug:table_slug>.csv", views.paper_csv, name="leaderboard-paper-csv"),
    path("paper/<slug:table_slug>.json", views.paper_json, name="leaderboard-paper-json"),
    path("latency/", latency_views.latency, name="leaderboard-latency"),
    path("latency.csv", latency_views.latency_csv, name="leaderboard-latency-csv"),
    path("latency.json", latency_views.latency_json, name="leaderboard-latency-json"),
    path(
        "charts/accuracy-vs-latency.json",
        latency_views.chart_latency_json,
        name="leaderboard-chart-latency",
    ),
    path("quantization/", quantization_views.quantization, name="leaderboard-quantization"),
    path(
        "quantization.json",
        quantization_views.quantization_json,
        name="leaderboard-quantization-json",
    ),
    path(
        "quantization.csv", quantization_views.quantization_csv, name="leaderboard-quantization-csv"
    ),
    path("submit/", submissions.submit, name="leaderboard-submit"),
    path("submissions/<int:pk>/", submissions.submission_detail, name="leaderboard-submission"),
    path(
        "submissions/<int:pk>.json", submissions.submission_json, name="leaderboard-submission-json"
    ),
    path(
        "submissions/<int:pk>/cancel/",
        submissions.submission_cancel,
        name="leaderboard-submission-cancel",
    ),
    path("api/openapi.json", openapi.openapi_json, name="leaderboard-api-openapi"),
    path("api/submissions", submissions.api_submit, name="leaderboard-api-submit"),
    path(
        "api/submissions/<int:pk>/cancel",
        submissions.api_cancel,
        name="leaderboard-api-cancel",
    ),
    path("queue/", submissions.queue, name="leaderboard-queue"),
    path("queue.json", submissions.queue_json, name="leaderboard-queue-json"),
]
