"""The suites the site knows. Their rows are seeded by migrations (0005) from the task spec
(evaluator/tasks_spec.py), so a page only reads them; seed() is what those migrations run,
and what a database emptied by hand (or by a test's flush) gets on first use."""

from __future__ import annotations

from evaluator import tasks_spec

from .models import Suite

BNN_SUITE = "bnn-imagenet"
BNN_TASKS = [("top1", "Top-1"), ("top5", "Top-5")]


def seed(suite_model, task_model) -> None:
    """Create or update both suites and their tasks from the spec (idempotent). Takes the
    model classes so that a migration can pass its historical ones."""
    suite, _ = suite_model.objects.update_or_create(
        slug=tasks_spec.SUITE_SLUG,
        defaults={"name": tasks_spec.SUITE_NAME, "description": tasks_spec.SUITE_DESCRIPTION},
    )
    for position, spec in enumerate(tasks_spec.TASKS):
        task_model.objects.update_or_create(
            suite=suite,
            key=spec.key,
            defaults={
                "harness_name": spec.harness,
                "label": spec.label,
                "position": position,
                "headline_metric": spec.headline,
            },
        )
    bnn, _ = suite_model.objects.update_or_create(
        slug=BNN_SUITE,
        defaults={
            "name": "ImageNet, binary neural networks (reported only)",
            "description": "Top-1 / top-5 accuracy (%) of binary networks on ImageNet.",
            "reported_only": True,
        },
    )
    for position, (key, label) in enumerate(BNN_TASKS):
        task_model.objects.update_or_create(
            suite=bnn,
            key=key,
            defaults={"label": label, "position": position, "headline_metric": key},
        )


def _get(slug: str) -> Suite:
    try:
        return Suite.objects.get(slug=slug)
    except Suite.DoesNotExist:
        from .models import Task

        seed(Suite, Task)
        return Suite.objects.get(slug=slug)


def csr_suite() -> Suite:
    """The MobileLLM common-sense suite (one query)."""
    return _get(tasks_spec.SUITE_SLUG)


def bnn_suite() -> Suite:
    return _get(BNN_SUITE)
