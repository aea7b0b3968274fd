"""Synthetic models in bulk, for the benchmarks (bench/) and the scale tests: the board at
10,000 or 100,000 models without evaluating any. Their names say what they are ("Bulk-…"),
and they are never created by the site itself."""

from __future__ import annotations

import itertools

from . import board
from .models import Entry, EvaluationRun, TaskScore
from .suites import csr_suite

_batches = itertools.count(1)


def seed_synthetic(count: int, batch_size: int = 2000) -> list[EvaluationRun]:
    """count entries with a measured full-benchmark run each, in a few bulk queries."""
    suite = csr_suite()
    tasks = list(suite.tasks.all())
    batch = next(_batches)
    entries = Entry.objects.bulk_create(
        (
            Entry(name=f"Bulk-{batch}-{i}", slug=f"bulk-{batch}-{i}", params=50_000_000 + i * 1000)
            for i in range(count)
        ),
        batch_size=batch_size,
    )
    runs = EvaluationRun.objects.bulk_create(
        (
            EvaluationRun(
                entry=e,
                suite=suite,
                kind="measured",
                avg=0.4 + (i % 100) / 1000,
                provenance={"lm_eval_version": "0.4.13", "device": "cpu"},
            )
            for i, e in enumerate(entries)
        ),
        batch_size=batch_size,
    )
    TaskScore.objects.bulk_create(
        (
            TaskScore(
                run=r,
                task=t,
                metric=t.headline_metric,
                value=0.3 + (i % 50) / 100,
                stderr=0.01,
                n=100,
            )
            for i, r in enumerate(runs)
            for t in tasks
        ),
        batch_size=batch_size,
    )
    board.changed()  # bulk_create sends no signals
    return runs
