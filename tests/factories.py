"""Test data builders, in one place."""

import itertools

from django.db.models import F

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


def samples_for(harness_task: str, outcomes: list[int]) -> list[dict]:
    """Per-sample records of a two-choice task as the harness writes them: document i has
    the correct answer first, and the model picks it (higher log-likelihood) when
    outcomes[i] is 1."""
    records = []
    for i, right in enumerate(outcomes):
        ctx = f"Question: {harness_task} question {i}?\nAnswer:"
        lls = [-1.0, -2.0] if right else [-2.0, -1.0]
        records.append(
            {
                "task": harness_task,
                "doc_id": i,
                "doc": {"question": f"{harness_task} question {i}?"},
                "target": 0,
                "arguments": [[ctx, f" right answer {i}"], [ctx, f" wrong answer {i}"]],
                "resps": [[[ll, False]] for ll in lls],
                "filtered_resps": [[ll, False] for ll in lls],
                "acc": float(right),
                "acc_norm": float(right),
            }
        )
    return records


def make_measured(
    entry: Entry, outcomes: dict[str, list[int]], data_sha: str = "sha-of-the-sample-set", **fields
) -> EvaluationRun:
    """A measured run whose scores on the given task keys come from per-document outcomes
    (1 right, 0 wrong), stored as a per-sample file with the data identity of each task;
    the other tasks get make_run's 0.5 without per-sample records."""
    import gzip
    import json
    import math

    from django.core.files.base import ContentFile

    from evaluator.tasks_spec import BY_KEY

    fields.setdefault("benchmark", "full")
    identity = {
        BY_KEY[key].harness: {
            "file": f"{key}.jsonl",
            "split": "test",
            "sha256": f"{data_sha}-{key}",
        }
        for key in outcomes
    }
    provenance = {"lm_eval_version": "0.4.13", "device": "cpu", "data": {"tasks": identity}}
    run = make_run(entry, provenance=provenance, **fields)
    lines = []
    for key, values in outcomes.items():
        p, n = sum(values) / len(values), len(values)
        # lm-eval's stderr of a mean of 0/1 outcomes: the sample standard deviation / sqrt(n).
        stderr = math.sqrt(p * (1 - p) * n / (n - 1) / n) if n > 1 else 0.0
        run.scores.filter(task__key=key).update(value=p, stderr=stderr, n=n)
        lines += [json.dumps(r) for r in samples_for(BY_KEY[key].harness, values)]
    headline = [s.value for s in run.scores.filter(metric=F("task__headline_metric"))]
    run.avg = sum(headline) / len(headline)
    run.samples_file.save(
        f"run-{run.pk}-samples.jsonl.gz",
        ContentFile(gzip.compress(("\n".join(lines) + "\n").encode())),
        save=False,
    )
    run.save(update_fields=["avg", "samples_file"])
    return run
