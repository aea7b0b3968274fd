"""Ranks and 95 % rank ranges of the leaderboard's rows within their size classes, as
Chatbot Arena shows them (leaderboard/stats.py computes them; docs/statistics.md and the
page say how). The paper view never calls this: the paper's tables stay as printed."""

from __future__ import annotations

from collections import defaultdict

from evaluator.tasks_spec import BY_KEY

from . import stats

REPORTED = "reported"


def avg_stderr(row) -> float | None:
    """The standard error (percent) of a row's average over the eight tasks, or None when
    it cannot be derived: a task is missing, or a measured task has no stderr. Measured
    tasks use lm-eval's stderr; reported ones the binomial sqrt(p(1 − p)/n) on the task's
    full size, assuming the paper scored the whole split."""
    ses = []
    for key, cell in row.cells.items():
        if cell.value is None:
            return None
        if row.kind == REPORTED:
            if key not in BY_KEY:
                return None
            ses.append(100 * stats.binomial_stderr(cell.value / 100, BY_KEY[key].full_n))
        elif cell.stderr is None:
            return None
        else:
            ses.append(cell.stderr)
    return stats.mean_stderr(ses) if ses else None


def attach_ranks(rows: list, by=lambda row: row.size_class) -> None:
    """Set row.rank and row.rank_range ((best, worst), or None where no stderr can be
    derived: such a row is ranked by its point value and counts as a point for the others),
    and the average's stderr, within each group of rows."""
    groups = defaultdict(list)
    for row in rows:
        row.rank, row.rank_range = None, None
        if row.avg.value is not None:
            groups[by(row)].append(row)
    for members in groups.values():
        ses = []
        for row in members:
            se = avg_stderr(row)
            row.avg.stderr = se
            ses.append(se)
        ranks = stats.rank_ranges([r.avg.value for r in members], ses)
        for row, se, rank in zip(members, ses, ranks, strict=True):
            row.rank = rank.rank
            if se is not None:
                row.rank_range = (rank.best, rank.worst)


def range_label(row) -> str:
    """'3' when the range is a single rank, '2–4' when rows are tied, '' when unranked."""
    if row.rank_range is None:
        return "" if row.rank is None else str(row.rank)
    best, worst = row.rank_range
    return str(best) if best == worst else f"{best}–{worst}"
