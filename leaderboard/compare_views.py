"""/compare/ and its twins: one data function (compare.compare), three renderers."""

from django.shortcuts import render

from . import compare, exports
from .suites import csr_suite
from .tables import METRICS


def _data(request) -> dict:
    metric = request.GET.get("metric", "headline")
    if metric not in METRICS:
        raise compare.CompareError(f"metric must be one of {', '.join(METRICS)}")
    return compare.compare(compare.parse_slugs(request.GET), csr_suite(), metric)


def compare_page(request):
    try:
        data = _data(request)
    except compare.CompareError as exc:
        return render(request, "leaderboard/compare.html", {"error": str(exc)}, status=exc.status)
    page = data.pop("_page")
    names = {m["slug"]: m["model"] for m in data["models"]}
    rows = []
    for item, extra in zip(data["tasks"], page["tasks"], strict=True):
        rows.append({**item, "label": extra["label"], "pairs": _pairs(item, extra["pairs"], names)})
    avg = {**data["avg"], "label": "Average", "pairs": _pairs(data["avg"], None, names)}
    for row in [*rows, avg]:
        row["cells"] = [row["values"][m["slug"]] for m in data["models"]]
    return render(
        request,
        "leaderboard/compare.html",
        {
            "models": data["models"],
            "rows": rows,
            "avg": avg,
            "metric": request.GET.get("metric", "headline"),
            "metric_choices": [
                ("headline", "headline (the paper's)"),
                ("acc", "acc"),
                ("acc_norm", "acc_norm"),
            ],
            "query": request.GET.urlencode(),
            "slugs": ",".join(m["slug"] for m in data["models"]),
        },
    )


def _pairs(item: dict, extra: list | None, names: dict) -> list[dict]:
    """Each diff with what the page adds (method, disagreements) and the second model's
    value, in the order of the models."""
    out = []
    for i, diff in enumerate(item["diffs"]):
        more = extra[i] if extra else {}
        out.append({**diff, **more, "b_name": names[diff["b"]]})
    return out


def compare_json(request):
    try:
        data = _data(request)
    except compare.CompareError as exc:
        return exports.json_error(str(exc), status=exc.status)
    data.pop("_page")
    return exports.JsonResponse(data)


def compare_csv(request):
    try:
        data = _data(request)
    except compare.CompareError as exc:
        return exports.json_error(str(exc), status=exc.status)
    rows = ([exports.neutralise(v) for v in row] for row in compare.csv_rows(data))
    return exports.stream_csv("compare", compare.CSV_HEADER, rows)
