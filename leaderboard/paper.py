"""What /paper/ says about each reported table: its caption, written per table (the suite's
description speaks of Tables 3 and 8 and is wrong for the ablation), and its size."""

from __future__ import annotations

from django.db.models import Count
from django.utils.text import slugify

from .models import LatencyResult, PaperRow

CAPTIONS = {
    "Table 3": (
        "MobileLLM paper, Table 3: zero-shot accuracy (%) of 125M- and 350M-class models on "
        "eight common-sense reasoning tasks, MobileLLM against earlier small models."
    ),
    "Table 8": (
        "MobileLLM paper, Table 8: the same eight tasks for the scaled-up 600M, 1B and 1.5B "
        "classes."
    ),
    "Layer-sharing ablation": (
        "MobileLLM paper, layer-sharing ablation: 125M and 350M models with no sharing "
        "(baseline) against immediate block-wise, repeat-all-over and reverse sharing of "
        "transformer blocks; zero-shot accuracy (%) on the eight tasks. Ablation rows are "
        "not ranked on the leaderboard."
    ),
    "BNN ImageNet": (
        "Binary neural networks on ImageNet: top-1 and top-5 accuracy (%), as collected by "
        "Liu et al. (2021)."
    ),
}


def caption(table: str, suite_description: str) -> str:
    return CAPTIONS.get(table, suite_description)


def index() -> list[dict]:
    """Every imported paper table with its caption, row count and groups (one query)."""
    counts = (
        PaperRow.objects.values("table", "run__suite__slug", "run__suite__description")
        .annotate(
            rows=Count("pk", distinct=True),
            groups=Count("group", distinct=True),
            columns=Count("run__suite__tasks", distinct=True),
        )
        .order_by("table")
    )
    return [
        {
            "slug": slugify(c["table"]),
            "table": c["table"],
            "caption": caption(c["table"], c["run__suite__description"]),
            "rows": c["rows"],
            "groups": c["groups"],
            "columns": c["columns"],
        }
        for c in counts
    ]


def table7_rows() -> int:
    """Rows of the paper's Table 7 as imported (latency on the reported device profiles)."""
    return LatencyResult.objects.filter(profile__reported=True).count()
