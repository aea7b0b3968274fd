"""Run one submission: claim it, fetch and inspect the checkpoint, evaluate, store.

Shared by the Celery task and `manage.py evaluate`. State lives in the Submission row;
every state change is a conditional update, so a redelivered message or a cancelled
submission never writes over what another process did.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections import deque
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.utils import InterfaceError, OperationalError
from django.utils import timezone
from django.utils.text import slugify

from evaluator import checkpoint, harness, machine, safehttp

from .models import Entry, EvaluationRun, Submission, TaskScore
from .suites import csr_suite

log = logging.getLogger(__name__)
S = Submission.Status
HEARTBEAT_EVERY_S = 1.0


class Transient(Exception):
    """A failure worth retrying (network); the submission is pending again."""


def with_db_retry(fn, *args, **kwargs):
    """Call fn, retrying while the database is unreachable (up to settings.DB_RETRY_S).

    Only for calls that are whole transactions (or single statements): a retry after a
    dropped connection must not replay half of one."""
    deadline = time.monotonic() + settings.DB_RETRY_S
    delay = 0.5
    while True:
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError):
            if time.monotonic() >= deadline:
                raise
            log.warning("database unreachable; retrying in %.1f s", delay)
            connection.close()  # drop the broken connection; the next query reconnects
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def checkpoint_key(source: checkpoint.Source) -> str:
    if source.kind == "hub":
        return f"hub:{source.repo_id}@{source.commit or source.revision}"
    return f"url:{source.url}"


def limits() -> checkpoint.Limits:
    return checkpoint.Limits(
        max_download_bytes=settings.CHECKPOINT_MAX_BYTES,
        max_expanded_bytes=settings.CHECKPOINT_MAX_BYTES,
        max_archive_members=settings.CHECKPOINT_MAX_MEMBERS,
    )


def resolve_source(text: str) -> checkpoint.Source:
    """Parse and pin what the user typed (a Hub revision becomes a commit). Raises
    CheckpointError with a message for the user."""
    source = checkpoint.parse_source(text)
    if source.kind == "archive":
        # Refuse a private or non-https host now, with the form, not later in the worker.
        safehttp.vet(source.url, safehttp.Allowed(settings.CHECKPOINT_ALLOWED_HOSTS))
    return checkpoint.resolve(
        source,
        hub_endpoint=settings.HF_ENDPOINT,
        allowed_hosts=settings.CHECKPOINT_ALLOWED_HOSTS,
        limits=limits(),
        token=settings.HF_TOKEN,
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
) -> tuple[Submission, bool]:
    """The row for a new submission, or (existing, False) when the same checkpoint is already
    queued, running, or evaluated on the same data."""
    key = checkpoint_key(source)
    data = str(data or settings.EVAL_DATA)
    limit = limit if limit is not None else settings.EVAL_LIMIT
    existing = (
        Submission.objects.filter(checkpoint_key=key)
        .filter(Q(status__in=Submission.ACTIVE) | Q(status=S.DONE, data=data, limit=limit))
        .order_by("-created")
        .first()
    )
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            submission = Submission.objects.create(
                url=text.strip(),
                source_kind=source.kind,
                repo_id=source.repo_id,
                revision=source.revision,
                commit=source.commit,
                checkpoint_key=key,
                name=name,
                notes=notes,
                client_ip=client_ip,
                data=data,
                limit=limit,
                tasks=list(tasks or harness.TASKS),
                secret=_secret(),
                enqueued=timezone.now(),
            )
    except IntegrityError:
        # Lost the race with an identical submission: the constraint let one row in.
        return Submission.objects.active().get(checkpoint_key=key), False
    if enqueue:
        transaction.on_commit(lambda: send_for_evaluation(submission.pk))
    return submission, True


def _secret() -> str:
    import secrets

    return secrets.token_urlsafe(24)


def claim(pk: int, task_id: str = "") -> bool:
    """Take a pending submission (exactly one process can)."""
    now = timezone.now()
    changed = Submission.objects.filter(pk=pk, status=S.PENDING).update(
        status=S.FETCHING,
        started=now,
        heartbeat=now,
        attempts=F("attempts") + 1,
        celery_task_id=task_id,
        error="",
        task_index=0,
        task_fraction=0,
        task_name="",
    )
    return changed == 1


def move(pk: int, frm: list[str] | str, to: str, **fields) -> bool:
    frm = [frm] if isinstance(frm, str) else frm
    ended = {"finished": timezone.now()} if to in Submission.ENDED else {}
    changed = Submission.objects.filter(pk=pk, status__in=frm).update(
        status=to, heartbeat=timezone.now(), **ended, **fields
    )
    return changed == 1


class Beat:
    """Heartbeat, progress and cancellation for one running submission, throttled.

    Every write is conditional on the submission still running *this attempt*: a cancelled
    submission, or one the watchdog handed to another worker, makes this run stop."""

    def __init__(self, pk: int, attempt: int, progress=None):
        self.pk = pk
        self.attempt = attempt
        self.progress = progress
        self.fields: dict = {}
        self.last = 0.0
        self.cancelled = False

    def due(self) -> bool:
        return time.monotonic() - self.last >= HEARTBEAT_EVERY_S

    def should_stop(self) -> bool:
        if not self.cancelled and self.due():
            self._write()
        return self.cancelled

    def evaluation(self, index: int, count: int, task: str, fraction: float) -> None:
        if self.progress:
            self.progress(index, count, task, fraction)
        self.fields = {"task_index": index, "task_name": task, "task_fraction": fraction}
        if self.due() or fraction >= 1.0:
            self._write()

    def download(self, done: int, total: int | None) -> None:
        self.fields = {"task_fraction": done / total if total else 0.0}
        if self.due():
            self._write()

    def _write(self) -> None:
        self.last = time.monotonic()
        try:
            changed = Submission.objects.filter(
                pk=self.pk, status__in=Submission.RUNNING, attempts=self.attempt
            ).update(heartbeat=timezone.now(), **self.fields)
        except DatabaseError:
            # A missed heartbeat is no reason to stop an evaluation: carry on, reconnect
            # at the next beat. Results are written with retries (with_db_retry).
            log.warning("heartbeat of submission %s not written: database unreachable", self.pk)
            connection.close()
            return
        # Cancelled, or taken over by another attempt: stop at the next check.
        self.cancelled = changed == 0


class LogTail(logging.Handler):
    def __init__(self, lines: int = 60):
        super().__init__(logging.INFO)
        self.lines = deque(maxlen=lines)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record):
        self.lines.append(self.format(record))

    def text(self, extra: str = "") -> str:
        return "\n".join([*self.lines, extra]).strip()[-8000:]


def run(pk: int, task_id: str = "", progress=None) -> str:
    """Evaluate submission pk if it can be claimed; returns its final (or current) status."""
    if not claim(pk, task_id):
        return Submission.objects.get(pk=pk).status
    tail = LogTail()
    logging.getLogger().addHandler(tail)
    sub = Submission.objects.get(pk=pk)
    workdir = Path(settings.WORK_DIR) / f"submission-{pk}"
    try:
        return _run(sub, workdir, Beat(pk, sub.attempts, progress))
    except harness.Cancelled:
        move(pk, Submission.RUNNING, S.CANCELLED, log_tail=tail.text())
        return S.CANCELLED
    except checkpoint.CheckpointError as exc:
        if _time_limit_in(exc):
            # The soft limit struck inside a checkpoint check that turned it into a
            # CheckpointError: it is the time limit, not the checkpoint, that failed.
            move(
                pk,
                Submission.RUNNING,
                S.FAILED,
                error=_failure_message(_time_limit_in(exc)),
                log_tail=tail.text(),
            )
            return S.FAILED
        if getattr(exc, "transient", False):
            if sub.attempts >= settings.MAX_ATTEMPTS:
                move(
                    pk,
                    Submission.RUNNING,
                    S.FAILED,
                    log_tail=tail.text(),
                    error=f"gave up after {sub.attempts} attempts: {exc}",
                )
                return S.FAILED
            move(
                pk, Submission.RUNNING, S.PENDING, error=f"retrying: {exc}", enqueued=timezone.now()
            )
            raise Transient(str(exc)) from exc
        move(pk, Submission.RUNNING, S.REJECTED, error=str(exc), log_tail=tail.text())
        return S.REJECTED
    except Exception as exc:
        log.exception("submission %s failed", pk)
        message = _failure_message(exc)
        move(
            pk,
            Submission.RUNNING,
            S.FAILED,
            error=message,
            log_tail=tail.text(traceback.format_exc()),
        )
        return S.FAILED
    finally:
        logging.getLogger().removeHandler(tail)
        shutil.rmtree(workdir, ignore_errors=True)


def _time_limit_in(exc: BaseException | None) -> BaseException | None:
    from celery.exceptions import SoftTimeLimitExceeded

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, SoftTimeLimitExceeded):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def send_for_evaluation(pk: int) -> None:
    """Send submission pk to the eval queue, with the time limits of these settings (the
    limits travel in the message: whoever enqueues decides them)."""
    from .tasks import evaluate_submission

    evaluate_submission.apply_async(
        (pk,),
        soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
        time_limit=settings.CELERY_TASK_TIME_LIMIT,
    )


def _failure_message(exc: Exception) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, SoftTimeLimitExceeded):
        return (
            f"stopped: the evaluation ran past its time limit of "
            f"{settings.CELERY_TASK_SOFT_TIME_LIMIT} s"
        )
    return f"{type(exc).__name__}: {exc}"[:2000]


def _run(sub: Submission, workdir: Path, beat: Beat) -> str:
    if sub.run_id:
        # Scores were stored before the last worker died: only the status is left to do.
        move(sub.pk, S.FETCHING, S.EVALUATING)
        return _after_evaluation(sub)
    shutil.rmtree(workdir, ignore_errors=True)
    source, fetched = fetch_checkpoint(sub, workdir / "model", beat.download, beat.should_stop)
    info = fetched.info or checkpoint.inspect(fetched.path)
    twin = _evaluated_twin(sub, fetched.sha256)
    if twin is not None:
        move(
            sub.pk,
            Submission.RUNNING,
            S.DONE,
            entry=twin.entry,
            duplicate_of=twin,
            task_fraction=1.0,
            error=f"the same checkpoint (sha256 {fetched.sha256[:12]}…) was already "
            f"evaluated as #{twin.pk}: linked to it instead of running again",
        )
        return S.DONE
    entry = _entry_for(sub, source, fetched, info)
    if not move(sub.pk, S.FETCHING, S.EVALUATING, entry=entry, task_index=0, task_fraction=0.0):
        raise harness.Cancelled()
    result = harness.evaluate(
        fetched.path,
        tasks=sub.tasks,
        data=sub.data,
        limit=sub.limit,
        device=settings.EVAL_DEVICE,
        dtype=settings.EVAL_DTYPE,
        batch_size=settings.EVAL_BATCH_SIZE,
        progress=beat.evaluation,
        should_stop=beat.should_stop,
    )
    with_db_retry(store, sub, entry, result)
    return with_db_retry(_after_evaluation, sub)


def fetch_checkpoint(sub: Submission, dest: Path, progress=None, should_stop=None):
    """The submission's checkpoint, pinned to the commit resolved at submission, downloaded
    and verified into dest (DESIGN §6). Returns (source, fetched)."""
    source = replace(checkpoint.parse_source(sub.url), commit=sub.commit)
    fetched = checkpoint.fetch(
        source,
        dest,
        hub_endpoint=settings.HF_ENDPOINT,
        allowed_hosts=settings.CHECKPOINT_ALLOWED_HOSTS,
        limits=limits(),
        token=settings.HF_TOKEN,
        progress=progress,
        should_stop=should_stop,
    )
    return source, fetched


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


def unique_slug(name: str) -> str:
    base = slugify(name)[:180] or "model"
    slug, n = base, 1
    while Entry.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _entry_for(sub, source, fetched, info) -> Entry:
    fields = {
        "params": info.params_total,
        "params_non_embedding": info.params_non_embedding,
        "layers": info.layers,
        "architecture": info.architecture,
        "source_url": source.url if source.kind == "archive" else source.repo_id,
        "revision": source.commit,
        "content_sha256": fetched.sha256,
        "notes": sub.notes,
    }
    if sub.entry_id:  # a retry: the entry exists already
        Entry.objects.filter(pk=sub.entry_id).update(**fields)
        return Entry.objects.get(pk=sub.entry_id)
    return Entry.objects.create(name=sub.name, slug=unique_slug(sub.name), **fields)


def store(sub: Submission, entry: Entry, result: harness.EvalResult) -> EvaluationRun:
    """Write the run and every score in one transaction, once per submission."""
    suite = csr_suite()
    tasks = {t.harness_name: t for t in suite.tasks.all()}
    provenance = {
        **result.provenance,
        "lm_eval_version": result.provenance.get("versions", {}).get("lm_eval"),
        "project_version": settings.PROJECT_VERSION,
        "hardware": machine.describe(),
        "submission": sub.pk,
    }
    benchmark = provenance.get("benchmark", "sample")
    headline = []
    with transaction.atomic():
        locked = Submission.objects.select_for_update().get(pk=sub.pk)
        if locked.run_id:
            return locked.run
        run = EvaluationRun.objects.create(
            entry=entry,
            suite=suite,
            kind=EvaluationRun.Kind.MEASURED,
            benchmark=benchmark,
            ranked=benchmark == EvaluationRun.Benchmark.FULL,
            provenance=provenance,
            status=EvaluationRun.Status.DONE,
            finished=timezone.now(),
        )
        scores = []
        for task_result in result.tasks:
            task = tasks[task_result.task]
            for metric, (value, stderr) in task_result.metrics.items():
                scores.append(
                    TaskScore(
                        run=run,
                        task=task,
                        metric=metric,
                        value=value,
                        stderr=stderr,
                        n=task_result.n,
                    )
                )
                if metric == task.headline_metric:
                    headline.append(value)
        TaskScore.objects.bulk_create(scores)
        if len(headline) == len(tasks):
            run.avg = sum(headline) / len(headline)
        samples = _samples_file(result)
        run.samples_file.save(f"run-{run.pk}-samples.jsonl.gz", samples, save=False)
        run.save(update_fields=["avg", "samples_file"])
        Submission.objects.filter(pk=sub.pk).update(run=run)
    return run


def _samples_file(result: harness.EvalResult) -> ContentFile:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".jsonl.gz") as tmp:
        harness.write_samples_jsonl_gz(result, tmp.name)
        return ContentFile(Path(tmp.name).read_bytes())


def _after_evaluation(sub: Submission) -> str:
    from .tasks import schedule_probes

    profiles = schedule_probes(sub.pk)
    if profiles:
        move(sub.pk, S.EVALUATING, S.PROBING, probes_pending=profiles, task_fraction=1.0)
        return S.PROBING
    move(sub.pk, S.EVALUATING, S.DONE, task_fraction=1.0)
    return S.DONE


def cancel(pk: int) -> bool:
    """Cancel a pending or running submission; the worker notices within a second or two."""
    return move(pk, Submission.ACTIVE, S.CANCELLED, error="cancelled by the submitter")
