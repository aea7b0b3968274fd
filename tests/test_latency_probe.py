"""The latency probe (DESIGN §5). No test asserts an absolute time: this machine is shared
and noisy, so only orderings with a margin and the shape of the result are checked."""

import math

import pytest

from evaluator.latency import ProbeError, ProbeSettings, measure_bandwidth, probe
from evaluator.tinymodel import TinySpec, build_tiny_model

# Python overhead per layer dominates a decode step at this size, and it scales with depth
# just as the matrix work does, so 4 vs 8 layers gives a robust ~2x in a few seconds.
NARROW = TinySpec(layers=4, hidden=256, heads=4, kv_heads=2, ffn=768, vocab=512)
DEEP = TinySpec(layers=8, hidden=256, heads=4, kv_heads=2, ffn=768, vocab=512)
WIDE = TinySpec(layers=4, hidden=512, heads=8, kv_heads=4, ffn=1536, vocab=512)
QUICK = ProbeSettings(
    threads=1,
    prompt_tokens=32,
    decode_depth=32,
    decode_tokens=24,
    warmup=1,
    repeats=3,
    timeout_s=120,
    # Past `repeats`, rounds go on until the median is stable: on this noisy machine that can
    # take the whole budget, so keep it short here (the tests below check both endings).
    budget_s=3,
)
# Stops after `repeats` rounds: any spread meets a 1000 % target.
LOOSE = ProbeSettings(**{**QUICK.__dict__, "stable_within": 10.0})
# Never stable (a zero-width interval needs identical times): measures until the budget ends.
ENDLESS = ProbeSettings(**{**QUICK.__dict__, "stable_within": 0.0, "budget_s": 1.5})
# Two threads on a shared 2-core machine are slow and erratic: keep that run minimal.
MINIMAL = ProbeSettings(
    threads=2,
    prompt_tokens=8,
    decode_depth=8,
    decode_tokens=2,
    warmup=0,
    repeats=1,
    timeout_s=120,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("latency")
    return {
        name: build_tiny_model(root / name, spec)
        for name, spec in [("narrow", NARROW), ("deep", DEEP), ("wide", WIDE)]
    }


@pytest.fixture(scope="module")
def results(models):
    # Built once: each probe is a fresh interpreter that imports torch (seconds).
    return {
        "narrow": probe(models["narrow"], QUICK, bandwidth_gb_s=10.0),
        "deep": probe(models["deep"], QUICK),
        "wide": probe(models["wide"], QUICK),
        "two_threads": probe(models["narrow"], MINIMAL),
        "loose": probe(models["narrow"], LOOSE),
        "endless": probe(models["narrow"], ENDLESS),
    }


def test_every_figure_is_positive_and_finite(results):
    result = results["narrow"]
    for name in (
        "load_ms",
        "init_ms",
        "first_forward_ms",
        "prefill_ms",
        "decode_ms_p50",
        "decode_ms_p90",
        "decode_tok_s",
        "peak_rss_mb",
        "file_size_mb",
        "bytes_per_token",
        "roofline_frac",
    ):
        value = getattr(result, name)
        assert math.isfinite(value) and value > 0, name


def test_it_keeps_the_raw_samples_behind_the_summary(results):
    samples = results["narrow"].samples
    assert len(samples["prefill_ms"]) == QUICK.repeats
    # At least `repeats` decode rounds, whole rounds only, more while the median is unsettled.
    decoded = len(samples["decode_ms"])
    assert decoded >= QUICK.repeats * QUICK.decode_tokens
    assert decoded % QUICK.decode_tokens == 0
    assert results["narrow"].decode_n == decoded
    assert results["narrow"].decode_ms_p90 >= results["narrow"].decode_ms_p50
    assert results["narrow"].decode_tok_s == pytest.approx(1000 / results["narrow"].decode_ms_p50)


def test_roofline_fraction_follows_from_bytes_bandwidth_and_time(results):
    result = results["narrow"]
    expected = (result.bytes_per_token / 10e9) / (result.decode_ms_p50 / 1000)
    assert result.bandwidth_gb_s == 10.0
    assert result.roofline_frac == pytest.approx(expected)
    assert results["deep"].roofline_frac is None


def test_a_model_with_twice_the_layers_decodes_slower(results):
    narrow, deep = results["narrow"], results["deep"]
    assert deep.decode_ms_p50 > 1.25 * narrow.decode_ms_p50
    assert min(deep.samples["decode_ms"]) > 1.25 * min(narrow.samples["decode_ms"])


def test_a_wider_model_has_a_bigger_file_and_higher_peak_rss(results):
    narrow, wide = results["narrow"], results["wide"]
    assert wide.file_size_mb > 3 * narrow.file_size_mb
    # The extra weights are ~40 MB; the probe's own RSS must grow by most of that.
    assert wide.peak_rss_mb > narrow.peak_rss_mb + 0.8 * (wide.file_size_mb - narrow.file_size_mb)


def test_the_child_runs_with_the_requested_thread_count(results):
    assert results["narrow"].environment["threads"] == 1
    assert results["two_threads"].environment["threads"] == 2
    assert results["two_threads"].environment["omp_num_threads"] == "2"


def test_the_environment_names_the_machine_and_software(results):
    env = results["narrow"].environment
    assert env["cpu_model"] and env["torch"] and env["transformers"] and env["python"]
    assert (env["runtime"], env["dtype"]) == ("eager", "float32")


def test_a_model_dir_without_weights_fails_naming_the_missing_file(models, tmp_path):
    (tmp_path / "config.json").write_text((models["narrow"] / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        probe(tmp_path, QUICK)


def test_a_corrupt_weights_file_fails_with_the_childs_error(models, tmp_path):
    (tmp_path / "config.json").write_text((models["narrow"] / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(ProbeError, match="probe error: corrupt weights file") as raised:
        probe(tmp_path, QUICK)
    # The reason leads the message, so a shortened copy (a variant's reason) still says it.
    assert str(raised.value).startswith("latency probe failed (exit 1): corrupt weights file")


def test_the_childs_reason_leads_even_when_a_library_logs_after_it():
    from evaluator.latency import _said

    stderr = (
        "W1206 warnings\nprobe error: ValueError: logits differ\n"
        "[cpuinfo_utils.cpp:125] CPU info and manual query on # of cpus dont match.\n"
    )
    assert _said(stderr) == ": ValueError: logits differ"
    assert _said(stderr.encode()) == ": ValueError: logits differ"
    assert _said("only noise\n") == "" and _said(None) == ""


def test_a_directory_that_is_not_a_model_is_refused_before_starting_a_child(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        probe(tmp_path, QUICK)


def test_a_probe_that_overruns_its_timeout_is_stopped(models):
    with pytest.raises(ProbeError, match="exceeded its 0.5 s timeout"):
        probe(models["narrow"], ProbeSettings(**{**QUICK.__dict__, "timeout_s": 0.5}))


def test_settings_refuse_an_unknown_runtime():
    with pytest.raises(ValueError, match="runtime must be one of"):
        ProbeSettings(runtime="tflite")


def test_bandwidth_is_a_positive_rate():
    bandwidth = measure_bandwidth(threads=1, size_mb=64)
    assert math.isfinite(bandwidth) and bandwidth > 0


def test_it_reports_the_spread_behind_the_median(results):
    result = results["narrow"]
    decoded = result.samples["decode_ms"]
    assert result.decode_ms_min == min(decoded)
    assert result.decode_ms_min <= result.decode_ms_p50 <= result.decode_ms_p90
    assert result.decode_cv > 0 and result.decode_rel_ci >= 0
    assert result.stable is (result.decode_rel_ci <= QUICK.stable_within)


def test_a_stable_estimate_stops_after_the_minimum_rounds(results):
    loose = results["loose"]
    assert loose.stable is True
    assert loose.decode_n == LOOSE.repeats * LOOSE.decode_tokens


def test_an_estimate_that_never_settles_ends_with_its_budget_marked_unstable(results):
    endless = results["endless"]
    assert endless.stable is False
    # A 1.5 s budget of ~1-10 ms steps: far more than the three minimum rounds.
    assert endless.decode_n > 2 * ENDLESS.repeats * ENDLESS.decode_tokens
    assert endless.decode_rel_ci > 0


def test_settings_refuse_a_negative_budget():
    with pytest.raises(ValueError, match="must not be negative"):
        ProbeSettings(budget_s=-1)
