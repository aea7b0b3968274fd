"""/reproduced/ (the paper's rows beside measured runs of the same repos) and its JSON."""

from django.shortcuts import render

from . import exports, reproduced
from .suites import csr_suite


def reproduced_page(request):
    pairs = reproduced.all_pairs(csr_suite())
    return render(request, "leaderboard/reproduced.html", {"pairs": pairs})


def reproduced_json(request):
    return exports.JsonResponse({"pairs": reproduced.all_pairs(csr_suite())})
