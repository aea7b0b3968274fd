"""The statistics against values computed by hand (or by a reference formula)."""

import math

import pytest

from leaderboard import stats


def test_agreement_counts_each_document_once():
    a = [1, 1, 0, 0, 1, 0]
    b = [1, 0, 1, 0, 0, 0]
    agree = stats.agreement(a, b)
    assert agree.as_dict() == {"both_right": 1, "only_a": 2, "only_b": 1, "both_wrong": 2}
    assert agree.n == len(a)


def test_agreement_refuses_unaligned_or_non_binary_outcomes():
    with pytest.raises(ValueError, match="same documents"):
        stats.agreement([1, 0], [1])
    with pytest.raises(ValueError, match="0 or 1"):
        stats.agreement([0.5], [1])


def test_mcnemar_matches_a_hand_computed_table():
    # 10 discordant pairs split 8 / 2: P(X <= 2 | Bin(10, 1/2)) = (1 + 10 + 45) / 1024.
    assert stats.mcnemar_exact(8, 2) == pytest.approx(2 * 56 / 1024)
    assert stats.mcnemar_exact(2, 8) == stats.mcnemar_exact(8, 2)
    # A balanced split is no evidence at all; no discordant pair neither.
    assert stats.mcnemar_exact(5, 5) == 1.0
    assert stats.mcnemar_exact(0, 0) == 1.0
    # 0 / 6: 2 * (1/2)^6.
    assert stats.mcnemar_exact(0, 6) == pytest.approx(2 / 64)


def test_mcnemar_is_exact_for_thousands_of_discordant_pairs():
    # HellaSwag-sized: the exact tail of Bin(2000, 1/2) at 950, against lgamma in logs.
    n, k = 2000, 950
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
        for i in range(k + 1)
    ]
    top = max(log_terms)
    reference = 2 * math.exp(top) * sum(math.exp(t - top) for t in log_terms)
    assert stats.mcnemar_exact(1050, 950) == pytest.approx(reference, rel=1e-9)


def test_the_paired_bootstrap_ci_contains_the_difference():
    agree = stats.Agreement(both_right=300, only_a=60, only_b=40, both_wrong=100)
    diff = stats.paired_diff(agree)
    assert diff.delta == pytest.approx(20 / 500)
    low, high = diff.ci95
    assert low < diff.delta < high
    # The interval's half-width is close to 1.96 analytic standard errors.
    assert (high - low) / 2 == pytest.approx(stats.Z95 * stats.paired_stderr(agree), rel=0.1)
    assert diff.paired and diff.n_paired == 500
    assert diff.p_value == stats.mcnemar_exact(60, 40)
    # Seeded: the same comparison prints the same interval.
    assert stats.paired_diff(agree).ci95 == diff.ci95


def test_the_binomial_stderr_is_the_textbook_formula():
    assert stats.binomial_stderr(0.5, 100) == pytest.approx(0.05)
    assert stats.binomial_stderr(0.436, 2376) == pytest.approx(math.sqrt(0.436 * 0.564 / 2376))
    with pytest.raises(ValueError):
        stats.binomial_stderr(0.5, 0)


def test_an_unpaired_difference_uses_a_two_sample_z_test():
    diff = stats.unpaired_diff(0.55, 0.03, 0.50, 0.04)
    assert diff.delta == pytest.approx(0.05)
    assert diff.stderr == pytest.approx(0.05)  # hypot(0.03, 0.04)
    assert diff.ci95 == pytest.approx((0.05 - stats.Z95 * 0.05, 0.05 + stats.Z95 * 0.05))
    assert diff.p_value == pytest.approx(math.erfc(1 / math.sqrt(2)))  # z = 1: p = 0.3173
    assert not diff.paired and diff.agreement is None


def test_the_average_difference_follows_from_the_tasks():
    tasks = [stats.unpaired_diff(0.6, 0.03, 0.5, 0.04), stats.unpaired_diff(0.4, 0.0, 0.4, 0.0)]
    avg = stats.mean_diff(tasks)
    assert avg.delta == pytest.approx(0.05)
    assert avg.stderr == pytest.approx(0.05 / 2)  # sqrt(0.05² + 0²) / 2
    assert avg.p_value == pytest.approx(math.erfc(2 / math.sqrt(2)))
    assert "unpaired" in avg.method


def test_ranks_that_are_statistically_tied_overlap():
    # A clear leader, then three rows within each other's uncertainty, then a clear last.
    values = [0.70, 0.60, 0.59, 0.58, 0.40]
    stderrs = [0.005, 0.01, 0.01, 0.01, 0.005]
    ranks = stats.rank_ranges(values, stderrs)
    assert [(r.rank, r.best, r.worst) for r in ranks] == [
        (1, 1, 1),
        (2, 2, 4),
        (3, 2, 4),
        (4, 2, 4),
        (5, 5, 5),
    ]


def test_equal_values_share_a_rank_and_rows_without_uncertainty_are_points():
    ranks = stats.rank_ranges([0.5, 0.5, 0.4], [None, None, None])
    assert [(r.rank, r.best, r.worst) for r in ranks] == [(1, 1, 2), (1, 1, 2), (3, 3, 3)]
