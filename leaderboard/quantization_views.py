"""/quantization/ and its twins: across models, what each precision costs in accuracy and
buys in size and speed (leaderboard/quantization.py assembles the rows)."""

from django.shortcuts import render

from evaluator import quant

from . import exports
from .quantization import CSV_HEADER, across_models


def quantization(request):
    rows = across_models()
    return render(
        request,
        "leaderboard/quantization.html",
        {"rows": rows, "schemes": [(p, quant.SCHEMES[p]) for p in quant.RECIPES]},
    )


def quantization_json(request):
    head = {"columns": CSV_HEADER, "schemes": quant.SCHEMES}
    return exports.stream_json(head, "rows", iter(across_models()))


def quantization_csv(request):
    return exports.stream_csv(
        "quantization",
        CSV_HEADER,
        ([exports.neutralise(row[c]) for c in CSV_HEADER] for row in across_models()),
    )
