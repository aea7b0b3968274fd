"""How the probe decides that a latency estimate is stable (evaluator.latency_stats)."""

import math
import random

from evaluator import latency_stats


def test_the_median_interval_holds_the_middle_order_statistics():
    values = list(range(1, 101))  # 1..100, median 50.5
    low, high = latency_stats.median_ci(values)
    # n/2 ∓ 1.96·√n/2 = 50 ∓ 9.8: the 41st and the 60th smallest (1-based).
    assert (low, high) == (41, 60)
    assert latency_stats.relative_ci(values) == (60 - 41) / 2 / 50.5


def test_few_samples_give_the_whole_range():
    assert latency_stats.median_ci([3.0, 1.0, 2.0]) == (1.0, 3.0)
    assert not latency_stats.is_stable([2.0] * 7, within=0.05)  # too few to judge


def test_tight_samples_are_stable_and_a_long_tail_widens_the_interval():
    rng = random.Random(0)
    tight = [10 + rng.gauss(0, 0.05) for _ in range(200)]
    assert latency_stats.is_stable(tight, within=0.01)
    # A tail alone leaves the median where it was (that is why it is the headline), but when
    # about half the steps are slowed (another process on the core half the time) it is not.
    tail = [v * (rng.uniform(2, 10) if rng.random() < 0.2 else 1) for v in tight]
    assert latency_stats.is_stable(tail, within=0.05)
    noisy = [v * (3 if rng.random() < 0.5 else 1) for v in tight]
    assert not latency_stats.is_stable(noisy, within=0.05)
    assert latency_stats.relative_ci(noisy) > 5 * latency_stats.relative_ci(tight)


def test_the_spread_summarises_what_a_page_shows():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    spread = latency_stats.spread(values, within=0.05)
    assert spread["decode_ms_min"] == 1.0 and spread["decode_n"] == 10
    assert spread["decode_ms_p90"] == 9.1
    assert math.isclose(spread["decode_cv"], 3.0276503540974917 / 5.5)
    assert spread["stable"] is False and spread["decode_rel_ci"] > 0.05
    assert latency_stats.spread([4.0], within=0.05)["decode_cv"] == 0.0
