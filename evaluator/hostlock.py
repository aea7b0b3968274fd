"""No latency probe measures beside an evaluation on one host (issue 14 item 7).

A latency figure taken while an evaluation runs on the same cores is noise (the same tiny
model measured 0.45, 2.3 and 14.1 ms/token). So both take a `flock` on one file per host
while they work: a probe an exclusive one, an evaluation a shared one (evaluations may share
the host with each other: two eval workers on one machine still run side by side). The
workers that share the cores must name the same file (`HOST_LOCK_FILE`; compose mounts one
volume into both containers).

An ExecuTorch export, the untimed minutes before such a probe measures, takes the shared
lock as an evaluation does (leaderboard.latency.measure): only measurements need the host alone.

Probes go first: a probe takes seconds and a submission's status waits for it, while an
evaluation takes minutes to hours. A waiting probe holds a shared lock on `<file>.probe`;
an evaluation that gets the host while a probe waits lets go and tries again, so the probe
gets the host as soon as the evaluations under way end, not after the whole queue.

Plain Python, no Django. The lock is the kernel's: it goes away with its process, so a
killed worker never leaves the host locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_S = 0.5
# Paths this process holds already: a foreground `evaluate --probe` may probe inside its own
# evaluation's lock, and a second flock on a new descriptor would wait for itself.
_held: dict[str, int] = {}


def _try(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextmanager
def hold(
    path: str | Path | None,
    tick: Callable[[], None] | None = None,
    probe: bool = False,
    poll_s: float = POLL_S,
) -> Iterator[float]:
    """Hold the host lock at path (nothing when path is empty); yields the seconds waited.

    probe=True: alone on the host, before any evaluation that waits; otherwise beside other
    evaluations. tick() runs every poll_s while waiting: the caller's heartbeat (so the
    watchdog does not take a waiting worker for a dead one) and its cancellation check (tick
    may raise)."""
    if not path:
        yield 0.0
        return
    path = Path(path)
    key = str(path.resolve())
    if key in _held:
        _held[key] += 1
        try:
            yield 0.0
        finally:
            _held[key] -= 1
        return
    started = time.monotonic()
    fd = _open(path)
    waiting = _open(path.with_name(path.name + ".probe"))
    try:
        if probe:
            fcntl.flock(waiting, fcntl.LOCK_SH)  # "a probe is waiting": evaluations yield
        while True:
            if _try(fd, fcntl.LOCK_EX if probe else fcntl.LOCK_SH):
                # An evaluation goes ahead only if no probe waits (no holder of the flag; two
                # evaluations checking at once may both see one and try again: harmless).
                if probe or _try(waiting, fcntl.LOCK_EX):
                    break
                fcntl.flock(fd, fcntl.LOCK_UN)
            if tick is not None:
                tick()
            time.sleep(poll_s)
        fcntl.flock(waiting, fcntl.LOCK_UN)  # the probe has the host; the flag goes down
        _held[key] = 1
        try:
            yield time.monotonic() - started
        finally:
            del _held[key]
    finally:
        os.close(waiting)
        os.close(fd)  # closing the descriptor releases the lock


def cores_available() -> int:
    """The cores this process may really run on: its CPU affinity (taskset, a cpuset, docker
    --cpuset-cpus) capped by a cgroup v2 CPU quota (docker --cpus), not the host's count."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def load_average() -> float | None:
    """The host's 1-minute load average (None where the system has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def under_load(before: float | None, after: float | None, threads: int, cores: int) -> bool:
    """Whether other work competed with a measurement that used `threads` threads.

    The load average counts runnable threads, ours included once we run: before the probe
    everything counted is someone else's; after it, up to `threads` of it may be ours. Other
    work above the cores we left free (and at least half a core) took time from us."""
    others = max(before or 0.0, (after or 0.0) - threads)
    return others > max(0.5, cores - threads)
