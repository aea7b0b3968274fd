"""The spread shown beside every measured latency, and when a measurement is flagged."""

import pytest

from leaderboard.spread import decode_spread


def test_steady_samples_are_not_flagged():
    s = decode_spread({"decode_ms": [2.3, 2.31, 2.29, 2.32, 2.3]})
    assert s["p50"] == 2.3 and s["min"] == 2.29 and s["n"] == 5
    assert s["p90"] == pytest.approx(2.316)
    assert s["cv"] == pytest.approx(0.00497, abs=1e-4)
    assert s["unstable"] is False and s["why"] == ""


def test_the_issues_noisy_probe_is_flagged_with_its_reasons():
    # The same tiny model measured 2.3, 0.45 and 14.1 ms/token; p90 16.8 against p50 2.3.
    s = decode_spread({"decode_ms": [2.3, 0.45, 14.1, 2.2, 16.8]})
    assert s["unstable"] is True
    assert "vary by" in s["why"] and "× the median" in s["why"]


def test_too_few_samples_are_flagged():
    s = decode_spread({"decode_ms": [2.0, 2.0]})
    assert s["unstable"] and s["why"] == "only 2 samples"


def test_no_samples_shows_nothing_and_flags_nothing():
    for samples in (None, {}, {"decode_ms": []}, {"decode_ms": [None, float("nan")]}):
        s = decode_spread(samples)
        assert s["n"] == 0 and s["p50"] is None and s["unstable"] is False


def test_the_provenance_download_is_for_measured_runs_of_that_model_only(client, reported):
    from leaderboard.models import EvaluationRun

    run = EvaluationRun.objects.filter(kind="reported").select_related("entry").first()
    url = f"/models/{run.entry.slug}/runs/{run.pk}/provenance.json"
    assert client.get(url).status_code == 404
