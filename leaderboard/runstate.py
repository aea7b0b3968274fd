"""Every status change of a submission and of a latency probe, in one place.

A change is a conditional UPDATE ... WHERE status IN (allowed sources): it changes one row or
none, so a redelivered message, a cancelled submission or a second worker never writes over
what another process did. TRANSITIONS and PROBE_TRANSITIONS say which status may follow
which; move() and move_probe() refuse anything else. The watchdog (DESIGN §3) lives here
too: all it does is change statuses and re-send messages.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Max
from django.db.utils import InterfaceError, OperationalError
from django.utils import timezone

from . import queueing
from .models import DeviceProfile, Entry, Probe, Submission

log = logging.getLogger(__name__)
S = Submission.Status
P = Probe.Status
HEARTBEAT_EVERY_S = 1.0

TRANSITIONS: dict[str, set[str]] = {
    # claimed by a worker; cancelled; given up by the watchdog after MAX_ATTEMPTS
    S.PENDING: {S.FETCHING, S.CANCELLED, S.FAILED},
    # fetched; the same content was already evaluated (linked); a transient error or a dead
    # worker (pending again); refused; broken; cancelled
    S.FETCHING: {S.EVALUATING, S.DONE, S.PENDING, S.REJECTED, S.FAILED, S.CANCELLED},
    # scores stored (then probes, or done without any); as above
    S.EVALUATING: {S.PROBING, S.DONE, S.PENDING, S.REJECTED, S.FAILED, S.CANCELLED},
    # every probe answered; cancelled while waiting
    S.PROBING: {S.DONE, S.FAILED, S.CANCELLED},
}
PROBE_TRANSITIONS: dict[str, set[str]] = {
    P.PENDING: {P.RUNNING, P.FAILED},  # a worker takes it; no worker ever answered
    P.RUNNING: {P.DONE, P.FAILED, P.PENDING},  # measured; failed; its worker died
}


def sources(to: str, table: dict[str, set[str]] = TRANSITIONS) -> list[str]:
    return [frm for frm, targets in table.items() if to in targets]


def _allowed(to: str, frm, table) -> list[str]:
    allowed = sources(to, table)
    if frm is None:
        return allowed
    frm = [frm] if isinstance(frm, str) else list(frm)
    if not set(frm) <= set(allowed):
        raise ValueError(f"no transition from {sorted(set(frm) - set(allowed))} to {to}")
    return frm


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


# --- submissions ----------------------------------------------------------------------------


def move(pk: int, to: str, frm: str | list[str] | None = None, **fields) -> bool:
    """Move submission pk to `to` if its status is one of `frm` (default: every status that
    may go there); True if this call made the change."""
    now = timezone.now()
    ended = {"finished": now} if to in Submission.ENDED else {}
    changed = Submission.objects.filter(pk=pk, status__in=_allowed(to, frm, TRANSITIONS)).update(
        status=to, heartbeat=now, **ended, **fields
    )
    return changed == 1


def claim(pk: int, task_id: str = "") -> bool:
    """Take a pending submission (exactly one process can)."""
    now = timezone.now()
    return move(
        pk,
        S.FETCHING,
        S.PENDING,
        started=now,
        attempts=F("attempts") + 1,
        celery_task_id=task_id,
        error="",
        task_index=0,
        task_fraction=0,
        task_name="",
    )


def retry_later(pk: int, error: str) -> bool:
    """A transient failure: pending again, with the reason; the caller re-sends."""
    return move(pk, S.PENDING, error=error, enqueued=timezone.now())


def cancel(pk: int) -> bool:
    """Cancel a pending or running submission; the worker notices within a second or two."""
    changed = move(pk, S.CANCELLED, error="cancelled by the submitter")
    if changed:
        Probe.objects.filter(submission_id=pk, status=P.PENDING).update(
            status=P.FAILED, finished=timezone.now(), error="the submission was cancelled"
        )
    return changed


class Beat:
    """Heartbeat, progress and cancellation for one running submission, throttled.

    Every write is conditional on the submission still running *this attempt*: a cancelled
    submission, or one the watchdog handed to another worker, makes this run stop."""

    def __init__(self, pk: int, attempt: int, progress=None, soft_limit_s: float | None = None):
        self.pk = pk
        self.attempt = attempt
        self.progress = progress
        self.fields: dict = {}
        self.last = 0.0
        self.cancelled = False
        self.soft_limit_s = soft_limit_s
        self.deadline = time.monotonic() + soft_limit_s if soft_limit_s else None

    def due(self) -> bool:
        self.check_deadline()
        return time.monotonic() - self.last >= HEARTBEAT_EVERY_S

    def check_deadline(self) -> None:
        """Celery's soft limit is an exception raised from a signal handler: when it lands
        inside a finaliser (`__del__`, seen in CI) Python prints and drops it, and only the
        hard kill follows, leaving the row to the watchdog. The same limit, checked here at
        every progress call, always ends the run with its reason."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            from celery.exceptions import SoftTimeLimitExceeded

            self.deadline = None  # raised once; cleanup after it must not raise again
            raise SoftTimeLimitExceeded(self.soft_limit_s)

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


def start_probing(sub: Submission) -> str:
    """After the scores are stored: a probe per active measured device profile, sent once the
    transaction commits; the submission is probing until they answer, else done."""
    probes = [
        probe
        for profile in DeviceProfile.objects.filter(active=True, reported=False)
        if (probe := queue_probe(sub.entry, profile, submission=sub)) is not None
    ]
    if probes:
        move(sub.pk, S.PROBING, S.EVALUATING, task_fraction=1.0)
        return S.PROBING
    move(sub.pk, S.DONE, S.EVALUATING, task_fraction=1.0)
    return S.DONE


# --- probes ---------------------------------------------------------------------------------


def queue_probe(
    entry: Entry, profile: DeviceProfile, submission: Submission | None = None, send: bool = True
) -> Probe | None:
    """A pending probe of entry on profile, sent on commit (unless the caller runs it itself);
    None when one is already pending or running (a second would measure the first, and the
    first's figures will come)."""
    try:
        with transaction.atomic():
            probe = Probe.objects.create(
                entry=entry,
                profile=profile,
                submission=submission,
                enqueued=timezone.now(),
                heartbeat=timezone.now(),
                sends=1,
            )
    except IntegrityError:  # the partial unique constraint: one active probe per pair
        if submission is not None:
            # The submission waits for the probe already under way.
            Probe.objects.filter(entry=entry, profile=profile, status__in=Probe.ACTIVE).update(
                submission=submission
            )
        return None
    if send:
        transaction.on_commit(lambda: queueing.send_probe(probe.pk, profile.queue))
    return probe


def move_probe(pk: int, to: str, frm: str | list[str] | None = None, **fields) -> bool:
    now = timezone.now()
    ended = {"finished": now} if to in (P.DONE, P.FAILED) else {}
    allowed = _allowed(to, frm, PROBE_TRANSITIONS)
    changed = Probe.objects.filter(pk=pk, status__in=allowed).update(
        status=to, heartbeat=now, **ended, **fields
    )
    return changed == 1


def claim_probe(pk: int) -> bool:
    return move_probe(pk, P.RUNNING, P.PENDING, started=timezone.now(), attempts=F("attempts") + 1)


def probe_heartbeat(pk: int) -> None:
    try:
        Probe.objects.filter(pk=pk, status=P.RUNNING).update(heartbeat=timezone.now())
    except DatabaseError:
        log.warning("heartbeat of probe %s not written: database unreachable", pk)
        connection.close()


def finish_probe(pk: int, error: str = "") -> None:
    """The probe ended (error: why it failed); the last probe of a submission finishes it."""
    with transaction.atomic():
        probe = Probe.objects.select_for_update().get(pk=pk)
        if probe.status not in Probe.ACTIVE:
            return
        probe.status = P.FAILED if error else P.DONE
        probe.error = error
        probe.finished = probe.heartbeat = timezone.now()
        probe.save(update_fields=["status", "error", "finished", "heartbeat"])
        if probe.submission_id is None:
            return
        sub = Submission.objects.select_for_update().get(pk=probe.submission_id)
        if sub.status != S.PROBING:
            return
        fields = {"error": "\n".join(filter(None, [sub.error, error]))} if error else {}
        waiting = sub.probes.filter(status__in=Probe.ACTIVE).exists()
        if waiting:
            Submission.objects.filter(pk=sub.pk).update(heartbeat=timezone.now(), **fields)
        else:
            move(sub.pk, S.DONE, S.PROBING, **fields)


# --- the watchdog ---------------------------------------------------------------------------


def watchdog() -> dict:
    """Re-queue what a dead worker or a lost broker message left behind (DESIGN §3)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.HEARTBEAT_STALE_S)
    counts = {"requeued": 0, "failed": 0, "resent": 0, "probes": 0, "probes_given_up": 0}
    # Running submissions whose worker stopped beating (index submission_running_heartbeat).
    running = Submission.objects.filter(status__in=[S.FETCHING, S.EVALUATING], heartbeat__lt=stale)
    for pk, status, attempts in running.values_list("pk", "status", "attempts"):
        if attempts >= settings.MAX_ATTEMPTS:
            counts["failed"] += Submission.objects.filter(
                pk=pk, status=status, heartbeat__lt=stale
            ).update(
                status=S.FAILED,
                finished=now,
                error=f"gave up after {attempts} attempts: the worker stopped responding",
            )
            continue
        if Submission.objects.filter(pk=pk, status=status, heartbeat__lt=stale).update(
            status=S.PENDING, enqueued=now, error="the worker stopped responding; queued again"
        ):
            queueing.send_for_evaluation(pk)
            counts["requeued"] += 1
    # Pending submissions whose message is overdue (index submission_pending_enqueued).
    lost = now - timedelta(seconds=settings.REQUEUE_PENDING_AFTER_S)
    pending = Submission.objects.filter(status=S.PENDING, enqueued__lt=lost)
    waiting = _waiting_their_turn(stale)
    for pk, attempts, error, enqueued in pending.values_list("pk", "attempts", "error", "enqueued"):
        if waiting(enqueued):
            continue
        if attempts >= settings.MAX_ATTEMPTS:
            counts["failed"] += Submission.objects.filter(pk=pk, status=S.PENDING).update(
                status=S.FAILED, finished=now, error=f"gave up after {attempts} attempts: {error}"
            )
        elif Submission.objects.filter(pk=pk, status=S.PENDING, enqueued__lt=lost).update(
            enqueued=now
        ):
            queueing.send_for_evaluation(pk)
            counts["resent"] += 1
    _watch_probes(now, stale, counts)
    if any(counts.values()):
        log.warning("watchdog: %s", counts)
    return counts


def _waiting_their_turn(stale):
    """A test for pending messages sent at a given time: True while such a message is most
    likely still queued behind a running evaluation, so sending it again would only pile up
    duplicates (one per REQUEUE_PENDING_AFTER_S for as long as a 6-hour run holds the only
    worker).

    Such a message is overdue, and sent again, only when no evaluation is running (a free
    worker would have taken it) or when a worker has already taken a message sent after it
    (the queue passed it by: it was lost)."""
    busy = Submission.objects.filter(
        status__in=[S.FETCHING, S.EVALUATING], heartbeat__gte=stale
    ).exists()
    if not busy:
        return lambda enqueued: False
    # The latest send that a worker has claimed since (claims set `started`; every send,
    # first or again, sets `enqueued`).
    taken = Submission.objects.filter(started__gte=F("enqueued")).aggregate(Max("enqueued"))
    last_taken = taken["enqueued__max"]
    return lambda enqueued: last_taken is None or enqueued >= last_taken


def _watch_probes(now, stale, counts: dict) -> None:
    """Probes no worker took, or whose worker went quiet (index probe_active_heartbeat)."""
    quiet = Probe.objects.filter(status__in=Probe.ACTIVE, heartbeat__lt=stale).select_related(
        "profile"
    )
    for probe in quiet:
        if not Probe.objects.filter(pk=probe.pk, status=probe.status, heartbeat__lt=stale).update(
            heartbeat=now
        ):
            continue  # it moved on since the scan
        profile = probe.profile
        # The first message and MAX_ATTEMPTS more, as for submissions.
        if probe.sends > settings.MAX_ATTEMPTS or not profile.active:
            # No latency worker answered: the evaluation stands; say which probe is missing.
            _give_up_probe(probe)
            counts["probes_given_up"] += 1
            continue
        if probe.status == P.RUNNING:
            move_probe(probe.pk, P.PENDING, P.RUNNING)
        Probe.objects.filter(pk=probe.pk).update(sends=F("sends") + 1, enqueued=now)
        queueing.send_probe(probe.pk, profile.queue)
        counts["probes"] += 1


def _give_up_probe(probe: Probe) -> None:
    slug = probe.profile.slug
    finish_probe(
        probe.pk,
        f"latency probe on {slug} got no answer (is a worker consuming latency.{slug}?)",
    )
