"""/reproduced/ (the paper's rows beside measured runs of the same repos) and its JSON."""

from django.shortcuts import render

from . import exports, reproduced
from .suites import csr_suite


def reproduced_page(request):
    pairs = reproduced.all_pairs(csr_suite())
    return render(request, "leaderboard/reproduced.html", {"pairs": pairs})


def reproduced_json(request):
    return exports.JsonResponse({"pairs": reproduced.all_pairs(csr_suite())})


CSV_HEADER = [
    "model", "slug", "hub_id", "task", "metric", "reported", "reported_stderr", "reported_n",
    "measured", "measured_stderr", "measured_n", "delta", "ci95_low", "ci95_high", "p_value",
    "reported_source", "measured_source", "measured_run_id",
]  # fmt: skip


def _csv_rows(pairs):
    """One row per pair and task with a reported value, then the pair's average."""
    for p in pairs:
        head = [p["model"], p["slug"], p["hub_id"]]
        tail = [p["reported"]["source"], p["measured"]["source"], p["measured"]["run_id"]]
        for t in p["tasks"]:
            if t["reported"]["value"] is None:
                continue
            r, m, ci = t["reported"], t["measured"], t["ci95"] or [None, None]
            yield [*head, t["task"], t["metric"], r["value"], r["stderr"], r["n"], m["value"],
                   m["stderr"], m["n"], t["delta"], ci[0], ci[1], t["p_value"], *tail]  # fmt: skip
        avg, ci = p["avg"], p["avg"]["ci95"] or [None, None]
        yield [*head, "avg", "headline", p["reported"]["avg"], None, None, p["measured"]["avg"],
               None, None, avg["delta"], ci[0], ci[1], avg["p_value"], *tail]  # fmt: skip


def reproduced_csv(request):
    rows = _csv_rows(reproduced.all_pairs(csr_suite()))
    return exports.stream_csv(
        "reproduced", CSV_HEADER, ([exports.neutralise(v) for v in row] for row in rows)
    )
