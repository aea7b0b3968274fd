"""The statistics the site shows, in one place (docs/statistics.md says what each assumes).

Everything here works on fractions (an accuracy of 0.43, its standard error 0.012); callers
convert to percent for display (leaderboard/units.py). Django-free, so that the evaluator's
tools and the tests can use it as well.

- Paired (two measured runs on the same documents): agreement counts per document, an exact
  McNemar test on the discordant pairs, and a percentile bootstrap CI of the difference.
- Unpaired (a reported number, or runs on different data): binomial standard errors from
  each task's size and a two-sample z-test, labelled as such.
- Averages: the mean of the tasks' differences, its standard error from the tasks' (taken as
  independent), a normal CI and z-test.
- Rank ranges: as Chatbot Arena does, from 95 % intervals: a row's best rank counts the rows
  that are surely better (their lower bound above its upper bound), its worst rank the rows
  that are not surely worse.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal
BOOTSTRAP_ITERS = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same comparison always prints the same interval


@dataclass(frozen=True)
class Agreement:
    """Per-document outcomes of two models on the same documents."""

    both_right: int
    only_a: int
    only_b: int
    both_wrong: int

    @property
    def n(self) -> int:
        return self.both_right + self.only_a + self.only_b + self.both_wrong

    def as_dict(self) -> dict[str, int]:
        return {
            "both_right": self.both_right,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "both_wrong": self.both_wrong,
        }


@dataclass(frozen=True)
class Diff:
    """A − B: the difference (a fraction), its standard error, 95 % CI and p-value."""

    delta: float
    stderr: float | None
    ci95: tuple[float, float] | None
    p_value: float | None
    paired: bool
    method: str
    agreement: Agreement | None = None

    @property
    def n_paired(self) -> int | None:
        return self.agreement.n if self.agreement else None


def agreement(a: Sequence[float], b: Sequence[float]) -> Agreement:
    """Count outcomes of per-document scores (1 right, 0 wrong) of A and B, aligned."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need the same documents ({len(a)} vs {len(b)})")
    counts = [0, 0, 0, 0]
    for x, y in zip(a, b, strict=True):
        if x not in (0, 1) or y not in (0, 1):
            raise ValueError(f"outcomes must be 0 or 1, not {x!r} / {y!r}")
        counts[(0 if x else 2) + (0 if y else 1)] += 1
    return Agreement(*counts)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs at 1/2."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1))  # exact integers, then one division
    return min(1.0, 2 * tail / 2**n)


def paired_stderr(agree: Agreement) -> float:
    """Standard error of the difference of two paired proportions (large-sample)."""
    n = agree.n
    if n == 0:
        return 0.0
    b, c = agree.only_a, agree.only_b
    return math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n


def paired_diff(agree: Agreement, iters: int = BOOTSTRAP_ITERS, seed: int = BOOTSTRAP_SEED) -> Diff:
    """Accuracy of A minus accuracy of B on the same documents.

    The CI is a percentile bootstrap over documents: each resample draws n documents with
    replacement, i.e. the four agreement cells from a multinomial with the observed shares
    (numpy, seeded: the same comparison always prints the same interval).
    """
    import numpy as np

    n = agree.n
    if n == 0:
        raise ValueError("no paired documents")
    delta = (agree.only_a - agree.only_b) / n
    cells = [agree.both_right, agree.only_a, agree.only_b, agree.both_wrong]
    draws = np.random.default_rng(seed).multinomial(n, [c / n for c in cells], size=iters)
    deltas = np.sort((draws[:, 1] - draws[:, 2]) / n)
    low = float(deltas[int(0.025 * (iters - 1))])
    high = float(deltas[int(math.ceil(0.975 * (iters - 1)))])
    return Diff(
        delta=delta,
        stderr=paired_stderr(agree),
        ci95=(low, high),
        p_value=mcnemar_exact(agree.only_a, agree.only_b),
        paired=True,
        method="paired: exact McNemar test, percentile bootstrap CI over documents",
        agreement=agree,
    )


def binomial_stderr(p: float, n: int) -> float:
    """sqrt(p(1 − p) / n): the standard error of an accuracy p measured on n documents."""
    if n <= 0:
        raise ValueError("n must be positive")
    return math.sqrt(max(p * (1 - p), 0.0) / n)


def _normal_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def unpaired_diff(a: float, se_a: float, b: float, se_b: float) -> Diff:
    """A − B for independent estimates: normal CI and a two-sample z-test."""
    delta = a - b
    se = math.hypot(se_a, se_b)
    p = _normal_p(delta / se) if se > 0 else (1.0 if delta == 0 else 0.0)
    return Diff(
        delta=delta,
        stderr=se,
        ci95=(delta - Z95 * se, delta + Z95 * se),
        p_value=p,
        paired=False,
        method="unpaired: two-sample z-test on binomial standard errors",
    )


def mean_stderr(stderrs: Sequence[float]) -> float:
    """Standard error of the mean of k independent estimates: sqrt(Σ se²) / k."""
    if not stderrs:
        raise ValueError("no standard errors")
    return math.sqrt(sum(s * s for s in stderrs)) / len(stderrs)


def mean_diff(diffs: Sequence[Diff]) -> Diff:
    """The difference of averages over tasks: the mean of the tasks' differences, its
    standard error from theirs (tasks independent), a normal CI and z-test."""
    if not diffs or any(d.stderr is None for d in diffs):
        raise ValueError("every task's difference needs a standard error")
    delta = sum(d.delta for d in diffs) / len(diffs)
    se = mean_stderr([d.stderr for d in diffs])
    p = _normal_p(delta / se) if se > 0 else (1.0 if delta == 0 else 0.0)
    paired = all(d.paired for d in diffs)
    return Diff(
        delta=delta,
        stderr=se,
        ci95=(delta - Z95 * se, delta + Z95 * se),
        p_value=p,
        paired=paired,
        method=("paired" if paired else "unpaired")
        + ": mean of the tasks' differences, normal CI from their standard errors",
    )


@dataclass(frozen=True)
class Rank:
    rank: int  # 1 + the rows with a higher value (ties share a rank)
    best: int  # 1 + the rows surely better
    worst: int  # the rows not surely worse, this one included


def rank_ranges(values: Sequence[float], stderrs: Sequence[float | None]) -> list[Rank]:
    """Ranks and 95 % rank ranges of values with standard errors (None: no uncertainty
    known; the row then counts as its point value). O(n log n)."""
    if len(values) != len(stderrs):
        raise ValueError("one standard error per value")
    lows = [v - Z95 * (s or 0.0) for v, s in zip(values, stderrs, strict=True)]
    highs = [v + Z95 * (s or 0.0) for v, s in zip(values, stderrs, strict=True)]
    n = len(values)
    by_value, by_low, by_high = sorted(values), sorted(lows), sorted(highs)
    out = []
    for v, low, high in zip(values, lows, highs, strict=True):
        higher = n - bisect.bisect_right(by_value, v)
        surely_better = n - bisect.bisect_right(by_low, high)
        surely_worse = bisect.bisect_left(by_high, low)
        out.append(Rank(rank=1 + higher, best=1 + surely_better, worst=n - surely_worse))
    return out
