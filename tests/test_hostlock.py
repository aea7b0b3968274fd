"""The host lock that keeps latency probes and evaluations apart (issue 14 item 7), with real
processes holding real flocks, and the load rule that flags a measurement taken under load."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaluator import hostlock

ROOT = Path(__file__).resolve().parent.parent
# Holds the lock (as a probe when argv[2] == "probe") and says so; lets go when stdin closes.
# Its first tick says it is waiting, so a test knows it queued before the holder lets go.
HOLDER = """
import sys, time
from evaluator import hostlock
said = []
def tick():
    if not said:
        print("waiting", flush=True); said.append(1)
with hostlock.hold(sys.argv[1], tick=tick, probe=sys.argv[2] == "probe", poll_s=0.05):
    print("held", time.monotonic(), flush=True)
    sys.stdin.read()
"""


def holder(path, kind="evaluation"):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), kind],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return proc


def said(proc) -> str:
    return proc.stdout.readline().strip()


def release(proc) -> None:
    proc.stdin.close()
    proc.wait(timeout=10)


@pytest.mark.parametrize("first_kind, probe", [("evaluation", True), ("probe", False)])
def test_a_probe_and_an_evaluation_wait_for_each_other_and_beat_meanwhile(
    tmp_path, first_kind, probe
):
    lock = tmp_path / "host.lock"
    first = holder(lock, first_kind)
    assert said(first).startswith("held")
    ticks = []
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            # Still held after a second of waiting: the tick sees it and gives up.
            def tick():
                ticks.append(time.monotonic())
                if time.monotonic() - started > 1.0:
                    raise TimeoutError

            with hostlock.hold(lock, tick=tick, probe=probe, poll_s=0.05):
                pytest.fail("got the lock while another process held it")
        assert len(ticks) >= 5
    finally:
        release(first)
    with hostlock.hold(lock, poll_s=0.05) as waited:
        assert waited < 1.0  # free at once now that the holder is gone


def test_evaluations_share_the_host_and_a_probe_waits_for_all_of_them(tmp_path):
    lock = tmp_path / "host.lock"
    first, second = holder(lock), holder(lock)
    assert said(first).startswith("held") and said(second).startswith("held")
    probe = holder(lock, "probe")
    assert said(probe) == "waiting"
    release(first)
    time.sleep(0.3)
    release(second)
    assert said(probe).startswith("held")
    release(probe)


def test_a_waiting_probe_goes_before_a_waiting_evaluation(tmp_path):
    lock = tmp_path / "host.lock"
    running = holder(lock, "probe")  # a probe measures
    assert said(running).startswith("held")
    evaluation = holder(lock)
    assert said(evaluation) == "waiting"  # queued first
    probe = holder(lock, "probe")
    assert said(probe) == "waiting"
    release(running)
    line = said(probe)
    assert line.startswith("held"), line
    probe_at = float(line.split()[1])
    time.sleep(0.3)  # the evaluation polls meanwhile and must keep waiting
    release(probe)
    line = said(evaluation)
    assert line.startswith("held")
    assert float(line.split()[1]) > probe_at + 0.3
    release(evaluation)


def test_a_killed_holder_leaves_the_host_free(tmp_path):
    lock = tmp_path / "host.lock"
    proc = holder(lock)
    assert said(proc).startswith("held")
    proc.kill()
    proc.wait()
    with hostlock.hold(lock, poll_s=0.05) as waited:
        assert waited < 1.0


def test_the_same_process_may_take_it_again_inside_itself(tmp_path):
    lock = tmp_path / "host.lock"
    with hostlock.hold(lock), hostlock.hold(lock, probe=True) as waited:
        assert waited == 0.0
    other = holder(lock)
    assert said(other).startswith("held")  # released once the outer hold ended
    release(other)


def test_no_file_means_no_lock():
    with hostlock.hold("") as waited:
        assert waited == 0.0


def test_the_cores_available_follow_the_cpu_affinity():
    everything = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(everything)})
        assert hostlock.cores_available() == 1
    finally:
        os.sched_setaffinity(0, everything)
    assert hostlock.cores_available() <= len(everything)


@pytest.mark.parametrize(
    "before, after, threads, cores, flagged",
    [
        (0.1, 1.1, 1, 2, False),  # an idle host; after: our own thread
        (0.2, 1.4, 2, 2, False),  # two threads of ours on two cores
        (1.8, 2.5, 1, 2, True),  # an evaluation's thread or more beside ours
        (0.1, 3.6, 1, 2, True),  # something started while we measured
        (0.9, 1.0, 2, 2, True),  # with every core ours, any half-core of other work counts
        (3.0, 4.0, 4, 16, False),  # a big host with room to spare
        (None, None, 1, 2, False),  # no load average on this system
    ],
)
def test_a_measurement_is_flagged_when_other_work_exceeds_the_free_cores(
    before, after, threads, cores, flagged
):
    assert hostlock.under_load(before, after, threads, cores) is flagged
