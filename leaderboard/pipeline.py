"""Run one submission: claim it, fetch and inspect the checkpoint, evaluate, store.

Shared by the Celery task and `manage.py evaluate`. Every status change goes through
runstate, so a redelivered message or a cancelled submission never writes over what another
process did; this module only decides what happens next.
"""

from __future__ import annotations

import logging
import shutil
import traceback
from collections import deque
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils.text import slugify

from evaluator import checkpoint, harness, hostlock

from . import checkpoints, intake, queueing, runstate, variants
from .models import Entry, EvaluationRun, LatencyResult, Submission
from .redaction import harmless, public
from .storing import write_run

log = logging.getLogger(__name__)
S = Submission.Status
# The statuses a claimed run moves through; its failures move it from these only (a
# submission the watchdog has already handed to another worker is left to that one).
WORKING = [S.FETCHING, S.EVALUATING]


# A transient failure (network) is tried again after this many seconds, doubling per attempt.
RETRY_AFTER_S = 30


class LogTail(logging.Handler):
    def __init__(self, lines: int = 60):
        super().__init__(logging.INFO)
        self.lines = deque(maxlen=lines)
        # What the submitter sees: known harmless warnings left out (operators keep them).
        self.public_lines = deque(maxlen=lines)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record):
        line = self.format(record)
        self.lines.append(line)
        if not harmless(record):
            self.public_lines.append(line)

    def text(self, extra: str = "") -> str:
        """The public tail: no harmless noise, no traceback, no server path (the log lines
        can hold both)."""
        return public("\n".join([*self.public_lines, extra]).strip())[-8000:]

    def full(self, extra: str = "") -> str:
        """Everything, tracebacks included: for Submission.operator_log (admin only)."""
        return "\n".join([*self.lines, extra]).strip()[-16000:]


def run(pk: int, task_id: str = "", progress=None, soft_limit_s: float | None = None) -> str:
    """Evaluate submission pk if it can be claimed; returns its final (or current) status.
    soft_limit_s: the message's soft time limit, also checked at every progress call."""
    if not runstate.claim(pk, task_id):
        return Submission.objects.get(pk=pk).status
    tail = LogTail()
    logging.getLogger().addHandler(tail)
    sub = Submission.objects.get(pk=pk)
    workdir = Path(settings.WORK_DIR) / f"submission-{pk}-{sub.attempts}"
    try:
        return _run(sub, workdir, runstate.Beat(pk, sub.attempts, progress, soft_limit_s))
    except harness.Cancelled:
        runstate.move(pk, S.CANCELLED, WORKING, log_tail=tail.text(), operator_log=tail.full())
        return S.CANCELLED
    except checkpoint.CheckpointError as exc:
        return _refused(sub, exc, tail)
    except Exception as exc:
        log.exception("submission %s failed", pk)  # the server log keeps the traceback
        runstate.move(
            pk,
            S.FAILED,
            WORKING,
            error=public(_failure_message(exc)),
            log_tail=tail.text(),
            operator_log=tail.full(traceback.format_exc()),
        )
        return S.FAILED
    finally:
        logging.getLogger().removeHandler(tail)
        shutil.rmtree(workdir, ignore_errors=True)
        try:
            runstate.with_db_retry(drop_empty_entry, pk)
        except DatabaseError:  # an empty page left behind is no reason to fail the run
            log.warning("submission %s: its empty entry was not removed", pk)


def drop_empty_entry(pk: int) -> None:
    """The entry is created as the evaluation begins; if the submission then ended without
    scores (cancelled, failed), its model page would only say "No evaluation yet": delete it
    unless something else (a run, a latency result, another submission) holds on to it."""
    sub = Submission.objects.filter(pk=pk, status__in=[S.CANCELLED, S.FAILED, S.REJECTED]).first()
    if sub is None or sub.entry_id is None:
        return
    entry = sub.entry_id
    held = (
        EvaluationRun.objects.filter(entry_id=entry).exists()
        or LatencyResult.objects.filter(entry_id=entry).exists()
        or Submission.objects.filter(entry_id=entry).exclude(pk=pk).exists()
    )
    if not held:
        Entry.objects.filter(pk=entry).delete()  # the submission's link is set to NULL


def _refused(sub: Submission, exc: checkpoint.CheckpointError, tail: LogTail) -> str:
    pk = sub.pk
    logs = {"log_tail": tail.text(), "operator_log": tail.full()}
    limit = _time_limit_in(exc)
    if limit is not None:
        # The soft limit struck inside a checkpoint check that turned it into a
        # CheckpointError: it is the time limit, not the checkpoint, that failed.
        error = _failure_message(limit)
        runstate.move(pk, S.FAILED, WORKING, error=error, **logs)
        return S.FAILED
    # Checkpoint messages are written for the submitter, but may quote a path of ours.
    message = public(str(exc))
    if exc.transient:
        if sub.attempts >= settings.MAX_ATTEMPTS:
            error = f"gave up after {sub.attempts} attempts: {message}"
            runstate.move(pk, S.FAILED, WORKING, error=error, **logs)
            return S.FAILED
        if runstate.retry_later(pk, f"retrying: {message}"):
            queueing.send_for_evaluation(pk, countdown=RETRY_AFTER_S * 2 ** (sub.attempts - 1))
        return S.PENDING
    if runstate.move(pk, S.REJECTED, WORKING, error=message, **logs):
        _drop_unscored_entry(pk)
    return S.REJECTED


def _drop_unscored_entry(pk: int) -> None:
    """A checkpoint refused at load (non-finite logits, a weight missing) has an entry made
    for it already: with no run and no other submission it describes nothing measured."""
    entry_id = Submission.objects.filter(pk=pk).values_list("entry_id", flat=True).first()
    if entry_id:
        Entry.objects.filter(pk=entry_id, runs__isnull=True).exclude(
            submissions__in=Submission.objects.exclude(pk=pk)
        ).delete()


def _time_limit_in(exc: BaseException | None) -> BaseException | None:
    from celery.exceptions import SoftTimeLimitExceeded

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, SoftTimeLimitExceeded):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _failure_message(exc: BaseException) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, SoftTimeLimitExceeded):
        # The limit the message carried (raised by runstate.Beat), else this site's setting.
        limit = exc.args[0] if exc.args else settings.CELERY_TASK_SOFT_TIME_LIMIT
        return f"stopped: the evaluation ran past its time limit of {limit:g} s"
    return f"{type(exc).__name__}: {exc}"[:2000]


def _run(sub: Submission, workdir: Path, beat: runstate.Beat) -> str:
    if sub.run_id:
        # Scores were stored before the last worker died: the variants still missing (if
        # any) and the status are left to do.
        runstate.move(sub.pk, S.EVALUATING, S.FETCHING)
        if variants.missing(sub, sub.run):
            fetched = fetch_checkpoint(sub, workdir / "model", beat.download, beat.should_stop)
            beat.fields = {}
            variants.evaluate_missing(sub, sub.run, fetched.path, beat)
        return runstate.with_db_retry(runstate.start_probing, sub)
    shutil.rmtree(workdir, ignore_errors=True)
    fetched = fetch_checkpoint(sub, workdir / "model", beat.download, beat.should_stop)
    # The download's fraction must not be written as the first task's: the next heartbeat
    # (while the model loads) would show "task 100%" and 1/8 done before any task ran.
    beat.fields = {"task_index": 0, "task_name": "", "task_fraction": 0.0}
    twin = _evaluated_twin(sub, fetched.sha256)
    if twin is not None:
        linked_from = S.FETCHING
        if variants.missing(sub, twin.run):  # the twin's ladder lacks a precision asked for
            if not runstate.move(sub.pk, S.EVALUATING, S.FETCHING, entry=twin.entry):
                raise harness.Cancelled()
            beat.fields, linked_from = {}, S.EVALUATING
            variants.evaluate_missing(sub, twin.run, fetched.path, beat)
        runstate.move(
            sub.pk,
            S.DONE,
            linked_from,
            entry=twin.entry,
            duplicate_of=twin,
            task_fraction=1.0,
            error=f"the same checkpoint (sha256 {fetched.sha256[:12]}…) was already "
            f"evaluated as #{twin.pk}: linked to it instead of running again",
        )
        return S.DONE
    entry = _entry_for(sub, fetched)
    if not runstate.move(sub.pk, S.EVALUATING, S.FETCHING, entry=entry, task_fraction=0.0):
        raise harness.Cancelled()
    beat.fields = {}  # the download's fraction, which heartbeats would write back, is done
    ladder = variants.precisions_of(sub)
    # The host's cores are the evaluation's alone while it runs: no probe measures beside it.
    with hostlock.hold(settings.HOST_LOCK_FILE, tick=lambda: _beat_or_stop(beat)):
        result = harness.evaluate(
            fetched.path,
            tasks=sub.tasks,
            data=sub.data,
            limit=sub.limit,
            device=settings.EVAL_DEVICE,
            dtype=settings.EVAL_DTYPE,
            batch_size=settings.EVAL_BATCH_SIZE,
            progress=variants.scaled(beat.evaluation, 0, len(ladder), ladder[0]),
            should_stop=beat.should_stop,
            engine=settings.EVAL_ENGINE,
        )
    run = runstate.with_db_retry(store, sub, entry, result, checkpoint_facts(fetched))
    sub.entry = entry
    variants.evaluate_missing(sub, run, fetched.path, beat)
    # Before the probes are sent (and after the variants, which read it): a probe on this
    # machine reads the model from there. A GGUF's hash is the .gguf file's, not the
    # converted directory's the cache re-checks: not kept.
    if fetched.source_format != "gguf":
        checkpoints.keep(fetched.path, fetched.sha256)
    return runstate.with_db_retry(runstate.start_probing, sub)


def _beat_or_stop(beat: runstate.Beat) -> None:
    """While waiting for the host lock: heartbeats, and a cancellation stops the wait."""
    if beat.should_stop():
        raise harness.Cancelled()


def fetch_checkpoint(sub: Submission, dest: Path, progress=None, should_stop=None):
    """The submission's checkpoint, pinned to the commit resolved at submission, downloaded
    and verified into dest (DESIGN §6)."""
    return checkpoint.fetch(
        intake.source_of(sub),
        dest,
        hub_endpoint=settings.HF_ENDPOINT,
        allowed_hosts=settings.CHECKPOINT_ALLOWED_HOSTS,
        limits=intake.limits(),
        token=settings.HF_TOKEN,
        progress=progress,
        should_stop=should_stop,
    )


def _evaluated_twin(sub: Submission, sha256: str) -> Submission | None:
    return (
        Submission.objects.filter(
            entry__content_sha256=sha256,
            status=S.DONE,
            data=sub.data,
            limit=sub.limit,
            run__isnull=False,
        )
        .exclude(pk=sub.pk)
        .order_by("created")
        .first()
    )


def _free_slug(base: str) -> str:
    slug, n = base, 1
    while Entry.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def create_entry(name: str, **fields) -> Entry:
    """A new entry with a slug of its own; two workers picking the same free slug at once
    meet the unique constraint, and the loser picks again."""
    base = slugify(name)[:180] or "model"
    for _ in range(20):
        try:
            with transaction.atomic():
                return Entry.objects.create(name=name, slug=_free_slug(base), **fields)
        except IntegrityError:
            continue
    raise RuntimeError(f"no free slug for {name!r} after 20 tries")


def _entry_for(sub: Submission, fetched: checkpoint.Fetched) -> Entry:
    info, source = fetched.info, intake.source_of(sub)
    fields = {
        "params": info.params_total,
        "params_non_embedding": info.params_non_embedding,
        "layers": info.layers,
        "architecture": info.architecture,
        "source_url": source.repo_id if source.kind == "hub" else source.url,
        "revision": source.commit,
        "content_sha256": fetched.sha256,
        "notes": sub.notes,
    }
    if sub.entry_id:  # a retry: the entry exists already
        Entry.objects.filter(pk=sub.entry_id).update(**fields)
        return Entry.objects.get(pk=sub.entry_id)
    return create_entry(sub.name, **fields)


def checkpoint_facts(fetched: checkpoint.Fetched) -> dict:
    """The format the checkpoint came in, for the run's provenance: a GGUF's quantisation type
    is the precision this run measures (the model ran its dequantised float32 weights)."""
    if fetched.source_format != "gguf":
        return {"format": fetched.source_format}
    return {"format": "gguf", "gguf_type": fetched.gguf_type, "gguf_bytes": fetched.gguf_bytes}


def store(
    sub: Submission, entry: Entry, result: harness.EvalResult, facts: dict | None = None
) -> EvaluationRun:
    """Write the reference run and every score in one transaction, once per submission;
    facts (see checkpoint_facts) go into the provenance as "checkpoint"."""
    with transaction.atomic():
        locked = Submission.objects.select_for_update().get(pk=sub.pk)
        if locked.run_id:
            return locked.run
        run = write_run(entry, result, submission=sub.pk, checkpoint=facts)
        Submission.objects.filter(pk=sub.pk).update(run=run)
    return run
