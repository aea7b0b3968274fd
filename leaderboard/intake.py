"""A new submission: the typed source parsed and pinned, the row written, the message sent.

Shared by the web form, the JSON API and `manage.py evaluate`."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from evaluator import checkpoint, quant, safehttp, tasks_spec

from . import queueing, variants
from .models import Submission

S = Submission.Status


def checkpoint_key(source: checkpoint.Source) -> str:
    """The same checkpoint, however it was written, maps to the same key."""
    if source.kind == "hub":
        return f"hub:{source.repo_id}@{source.commit or source.revision}"
    return f"url:{source.url}"


def limits() -> checkpoint.Limits:
    return checkpoint.Limits(
        max_download_bytes=settings.CHECKPOINT_MAX_BYTES,
        max_expanded_bytes=settings.CHECKPOINT_MAX_BYTES,
        max_archive_members=settings.CHECKPOINT_MAX_MEMBERS,
        max_params=settings.CHECKPOINT_MAX_PARAMS,
        max_tokenizer_bytes=settings.CHECKPOINT_MAX_TOKENIZER_BYTES,
        deadline_s=settings.CHECKPOINT_DOWNLOAD_DEADLINE_S,
        min_rate=settings.CHECKPOINT_MIN_RATE,
        min_rate_window_s=settings.CHECKPOINT_MIN_RATE_WINDOW_S,
        max_ratio=settings.CHECKPOINT_MAX_RATIO,
    )


def pin(source: checkpoint.Source) -> checkpoint.Source:
    """Vet an archive's or a .gguf's host now (so the form says so, not the worker later) and
    pin a Hub revision to its commit. Raises CheckpointError with a message for the user."""
    if source.kind in ("archive", "gguf"):
        safehttp.vet(source.url, safehttp.Allowed(settings.CHECKPOINT_ALLOWED_HOSTS))
    return checkpoint.resolve(
        source,
        hub_endpoint=settings.HF_ENDPOINT,
        allowed_hosts=settings.CHECKPOINT_ALLOWED_HOSTS,
        limits=limits(),
        token=settings.HF_TOKEN,
    )


def resolve_source(text: str) -> checkpoint.Source:
    """Parse and pin what the user typed (the terminal's path; forms parse in clean_url)."""
    return pin(checkpoint.parse_source(text))


def source_of(sub: Submission) -> checkpoint.Source:
    """The source the submission was made with, pinned to its commit: never parsed again."""
    return checkpoint.Source(
        kind=sub.source_kind,
        url=sub.source_url,
        repo_id=sub.repo_id,
        revision=sub.revision,
        commit=sub.commit,
    )


def create_submission(
    source: checkpoint.Source,
    text: str,
    name: str,
    notes: str = "",
    client_ip: str | None = None,
    data: str | None = None,
    limit: int | None = None,
    tasks: list[str] | None = None,
    enqueue: bool = True,
    precisions: list[str] | None = None,
) -> tuple[Submission, bool]:
    """The row for a new submission, or (existing, False) when the same checkpoint is already
    queued or running, or evaluated on the same data at every precision asked for (a new
    one then evaluates only the precisions missing: pipeline, variants)."""
    key = checkpoint_key(source)
    data = str(data or settings.EVAL_DATA)
    limit = limit if limit is not None else settings.EVAL_LIMIT
    precisions = quant.parse_precisions(precisions or settings.EVAL_PRECISIONS)
    existing = (
        Submission.objects.filter(checkpoint_key=key)
        .filter(Q(status__in=Submission.ACTIVE) | Q(status=S.DONE, data=data, limit=limit))
        .select_related("run", "duplicate_of__run")
        .order_by("-created")
        .first()
    )
    if existing and (existing.is_active or variants.covers(_reference(existing), precisions)):
        return existing, False
    try:
        with transaction.atomic():
            submission = Submission.objects.create(
                url=text.strip(),
                source_kind=source.kind,
                source_url=source.url,
                repo_id=source.repo_id,
                revision=source.revision,
                commit=source.commit,
                checkpoint_key=key,
                name=name,
                notes=notes,
                client_ip=client_ip,
                data=data,
                limit=limit,
                tasks=list(tasks or tasks_spec.HARNESS_TASKS),
                precisions=precisions,
                secret=secrets.token_urlsafe(24),
                enqueued=timezone.now(),
            )
    except IntegrityError:
        # Lost the race with an identical submission: the constraint let one row in.
        return Submission.objects.active().get(checkpoint_key=key), False
    if enqueue:
        transaction.on_commit(lambda: queueing.send_for_evaluation(submission.pk))
    return submission, True


def _reference(sub: Submission):
    """The fp32 run a finished submission stands for: its own, or its twin's."""
    return sub.run or (sub.duplicate_of.run if sub.duplicate_of_id else None)
