"""Rows reported elsewhere with an average only (the MobileLLM-R1 README's table), shown on
/ in a table of their own: a different protocol (Meta's harness), no per-task values, so
never ranked with the paper's rows nor mixed into the per-task marks."""

from __future__ import annotations

from .importing_r1 import PROTOCOL, TABLE
from .models import PaperRow, size_class_for
from .units import percent, rounded


def rows(filters) -> list[dict]:
    """The table's rows, as plain values (one query), under the leaderboard's filters."""
    placed = (
        PaperRow.objects.filter(table=TABLE, run__status="done")
        .select_related("run__entry")
        .order_by("position")
    )
    out = []
    for place in placed:
        run, entry = place.run, place.run.entry
        size = entry.size_class_pin or size_class_for(entry.params)
        tasks = entry.contamination_tasks
        if filters.sizes and size not in filters.sizes:
            continue
        if filters.q and filters.q.lower() not in entry.name.lower():
            continue
        if (filters.kinds and "reported" not in filters.kinds) or not filters.keeps(tasks):
            continue
        out.append(
            {
                "model": entry.name,
                "slug": entry.slug,
                "url": entry.get_absolute_url(),
                "size_class": size,
                "params": entry.params,
                "params_label": entry.params_display,
                "avg": rounded(percent(run.avg)),
                "hub_id": entry.hub_id,
                "source": run.citation,
                "protocol": PROTOCOL,
                "contamination": {"tasks": tasks, "source": entry.contamination_source}
                if tasks
                else None,
            }
        )
    return out
