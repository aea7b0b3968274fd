"""The latency probe's ExecuTorch runtime (XNNPACK). Skips without `make install-executorch`
(fails instead under REQUIRE_SERVICES=1). No test asserts an absolute time.

Export and lowering cost ~6 s per executed layer here, so the models are one and two layers
deep and each is exported once for the whole module."""

import math

import pytest

from evaluator.latency import ProbeError, ProbeSettings, probe
from evaluator.tinymodel import TinySpec, build_tiny_model
from tests.conftest import need

ONE = TinySpec(layers=1, hidden=256, heads=4, kv_heads=2, ffn=768, vocab=512)
TWO = TinySpec(layers=2, hidden=256, heads=4, kv_heads=2, ffn=768, vocab=512)
SHARED = TinySpec(layers=1, hidden=256, heads=4, kv_heads=2, ffn=768, vocab=512, share_repeats=2)
SETTINGS = ProbeSettings(
    runtime="executorch",
    threads=1,
    prompt_tokens=16,
    decode_depth=16,
    decode_tokens=24,
    warmup=1,
    repeats=3,
    timeout_s=240,
)


def _executorch_imports() -> bool:
    try:
        import executorch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module", autouse=True)
def executorch_installed():
    need(_executorch_imports(), "executorch is not installed (make install-executorch)")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Model directories and their kept ExecuTorch programs."""
    root = tmp_path_factory.mktemp("latency-et")
    return {
        name: (build_tiny_model(root / name, spec), root / f"{name}-pte")
        for name, spec in [("one", ONE), ("two", TWO), ("shared", SHARED)]
    }


@pytest.fixture(scope="module")
def results(exported):
    return {
        name: probe(model_dir, SETTINGS, bandwidth_gb_s=10.0, export_dir=pte_dir)
        for name, (model_dir, pte_dir) in exported.items()
    }


def test_every_figure_is_positive_and_finite(results):
    result = results["one"]
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
    assert result.decode_ms_p90 >= result.decode_ms_p50
    assert result.decode_tok_s == pytest.approx(1000 / result.decode_ms_p50)
    # At least `repeats` whole rounds: the probe goes on until its estimate is stable.
    decoded = len(result.samples["decode_ms"])
    assert decoded >= SETTINGS.repeats * SETTINGS.decode_tokens
    assert decoded % SETTINGS.decode_tokens == 0
    assert len(result.samples["prefill_ms"]) == SETTINGS.repeats


def test_the_environment_says_executorch_with_xnnpack(results):
    env = results["one"].environment
    assert env["runtime"].startswith("executorch ") and env["runtime"].endswith("(XNNPACK)")
    assert env["threads"] == 1 and env["xnnpack_threads"] == 1
    assert env["prefill"].startswith("one call")
    assert env["export"]["max_cache_len"] >= SETTINGS.decode_depth + SETTINGS.decode_tokens


def test_the_first_forward_matches_eager_pytorch(results):
    for result in results.values():
        env = result.environment
        assert env["logits_max_abs_diff"] <= env["logits_tolerance"] == 1e-4


def test_bytes_per_token_are_counted_as_for_eager(results):
    # Same weights and the same executed-layer KV cache as the eager probe would count.
    one, two, shared = (results[k].bytes_per_token for k in ("one", "two", "shared"))
    assert two > one
    assert one < shared < two  # shared: one block's weights, two layers' cache


def test_a_model_with_twice_the_layers_decodes_slower(results):
    one, two = results["one"], results["two"]
    assert two.decode_ms_p50 > 1.2 * one.decode_ms_p50
    assert min(two.samples["decode_ms"]) > 1.2 * min(one.samples["decode_ms"])


def test_a_shared_model_stores_its_weights_once_and_runs_every_layer(results):
    one, two, shared = results["one"], results["two"], results["shared"]
    layer_mb = two.file_size_mb - one.file_size_mb
    assert layer_mb > 2.5  # one 256-wide block in float32 is ~3 MB
    # The .pte of 1 block run twice is the 1-layer model's (+ the second layer's KV cache),
    # not the 2-layer model's.
    assert abs(shared.file_size_mb - one.file_size_mb) < 0.1 * layer_mb
    assert shared.environment["export"]["layers_executed"] == 2
    assert min(shared.samples["decode_ms"]) > 1.2 * min(one.samples["decode_ms"])


def test_logits_that_differ_from_eager_fail_the_probe(exported, results):
    import torch

    _, pte_dir = exported["one"]
    reference = torch.load(pte_dir / "reference.pt")
    reference["logits"] += 1e-3
    torch.save(reference, pte_dir / "reference.pt")
    with pytest.raises(ProbeError, match="ExecuTorch logits differ from eager PyTorch's"):
        probe(exported["one"][0], SETTINGS, export_dir=pte_dir)


def test_a_failed_export_is_a_probe_error(tmp_path):
    import json

    model_dir = build_tiny_model(tmp_path / "m", ONE)
    config = json.loads((model_dir / "config.json").read_text())
    config["layer_sharing"] = {"scheme": "every_other_tuesday", "repeats": 2}
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ProbeError, match="(?s)ExecuTorch export failed.*unknown layer_sharing"):
        probe(model_dir, SETTINGS)


def test_the_export_has_its_own_budget(tmp_path):
    """Lowering a real model takes longer than measuring it (minutes: bench/README.md), so the
    export runs under export_timeout_s, not the probe's timeout_s."""
    import dataclasses

    model_dir = build_tiny_model(tmp_path / "m", ONE)
    hurried = dataclasses.replace(SETTINGS, timeout_s=240, export_timeout_s=1)
    with pytest.raises(ProbeError, match="ExecuTorch export exceeded its 1 s timeout"):
        probe(model_dir, hurried)
    with pytest.raises(ValueError, match="export_timeout_s must be positive"):
        dataclasses.replace(SETTINGS, export_timeout_s=0)
