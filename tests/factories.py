"""Test data builders, in one place."""

import itertools

from leaderboard.models import Entry, EvaluationRun, TaskScore
from leaderboard.seeding import seed_synthetic
from leaderboard.suites import csr_suite

_counter = itertools.count(1)


def make_entry(name: str | None = None, params: int | None = 100_000_000, **fields) -> Entry:
    n = next(_counter)
    name = name or f"Model-{n}"
    slug = fields.pop("slug", None) or f"{name.lower().replace(' ', '-')}-{n}"
    return Entry.objects.create(name=name, slug=slug[:200], params=params, **fields)


def make_run(
    entry: Entry, scores: dict[str, float] | None = None, kind="measured", **fields
) -> EvaluationRun:
    """A finished run with headline scores (fractions) for the given task keys; the
    remaining tasks of the suite get 0.5."""
    suite = csr_suite()
    tasks = list(suite.tasks.all())
    scores = scores or {}
    values = {t.key: scores.get(t.key, 0.5) for t in tasks}
    fields.setdefault("provenance", {"lm_eval_version": "0.4.13", "device": "cpu"})
    run = EvaluationRun.objects.create(
        entry=entry, suite=suite, kind=kind, avg=sum(values.values()) / len(values), **fields
    )
    TaskScore.objects.bulk_create(
        TaskScore(
            run=run, task=t, metric=t.headline_metric, value=values[t.key], stderr=0.01, n=100
        )
        for t in tasks
    )
    return run


def make_many(count: int) -> None:
    """count entries with a measured run each, in a few bulk queries."""
    seed_synthetic(count)
