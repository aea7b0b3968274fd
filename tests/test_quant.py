"""The quantization recipes (evaluator/quant.py) on the project's tiny Llama and a tiny
GPT-2, and the int8 variant's parity with stock lm-eval over the same quantized model."""

from __future__ import annotations

import pytest
import torch

from evaluator import datasource, quant
from evaluator.harness import CPU_BATCH_SIZE, TASKS, evaluate
from evaluator.modeling import load_model
from evaluator.tinymodel import TinySpec, build_tiny_model

pytest.importorskip("torchao", reason="torchao (requirements.txt) runs the int8/int4 recipes")

SPECS = {
    "llama": TinySpec(),
    "gpt2": TinySpec(arch="gpt2", hidden=64, heads=4, kv_heads=4, ffn=128),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=list(SPECS))
def model_dir(request, tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp(request.param), SPECS[request.param])


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits.float()


@pytest.fixture(scope="module")
def ladder(model_dir):
    """Each recipe applied to a fresh load: (what apply() said, logits on fixed tokens)."""
    ids = torch.randint(3, 500, (2, 24), generator=torch.Generator().manual_seed(0))
    out = {}
    for precision in quant.RECIPES:
        model, _ = load_model(model_dir, device="cpu")
        out[precision] = (quant.apply(model, precision), logits(model, ids), model)
    return out


def test_the_reference_is_the_checkpoint_as_loaded(ladder, model_dir):
    info, _, model = ladder["fp32"]
    params = {p.data_ptr(): p.numel() for p in model.parameters()}  # tied weights once
    assert info.weights_bytes == info.weights_bytes_packed == 4 * sum(params.values())
    assert info.quantized_layers == 0


@pytest.mark.parametrize("precision", ["bf16", "int8", "int4"])
def test_each_variant_moves_the_logits_but_keeps_them_finite(ladder, precision):
    reference = ladder["fp32"][1]
    moved = ladder[precision][1]
    assert torch.isfinite(moved).all()
    difference = (moved - reference).abs().max().item()
    # Moved (so the recipe ran), but a random model's logits are small: far from noise.
    assert 0 < difference < 0.5


def test_sizes_shrink_as_each_recipe_says(ladder):
    fp32 = ladder["fp32"][0].weights_bytes
    bf16 = ladder["bf16"][0]
    int8 = ladder["int8"][0]
    int4 = ladder["int4"][0]
    assert bf16.weights_bytes == fp32 // 2
    # int8: one byte a weight plus per-channel scales; the untied output layer is now its
    # own int8 copy, so a bit over a quarter.
    assert fp32 / 4 < int8.weights_bytes < fp32 / 2.5
    # int4 as run holds its values in int8 (plus a scale per 32), packed two per byte.
    assert int4.weights_bytes_packed < int4.weights_bytes < fp32 / 2.5
    assert int4.weights_bytes_packed < int8.weights_bytes


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_no_weight_matrix_is_left_in_full_precision(ladder, precision):
    info, _, model = ladder[precision]
    matrices = [(name, p) for name, p in model.named_parameters() if p.dim() >= 2]
    assert matrices and all(quant.is_quantized(p) for _, p in matrices)
    assert info.quantized_layers == len(matrices)


def test_gpt2_conv1d_becomes_a_linear_layer_computing_the_same_function(tmp_path):
    model, _ = load_model(build_tiny_model(tmp_path, SPECS["gpt2"]), device="cpu")
    ids = torch.randint(3, 500, (1, 16), generator=torch.Generator().manual_seed(1))
    before = logits(model, ids)
    quant._conv1d_to_linear(model)
    assert isinstance(model.transformer.h[0].attn.c_attn, torch.nn.Linear)
    assert torch.allclose(logits(model, ids), before, atol=1e-5)


def test_int4_refuses_widths_that_groups_of_32_do_not_divide(tmp_path):
    spec = TinySpec(hidden=48, heads=4, kv_heads=2, ffn=96)
    model, _ = load_model(build_tiny_model(tmp_path, spec), device="cpu")
    with pytest.raises(quant.QuantRefused, match="divisible by 32"):
        quant.apply(model, "int4")


def test_it_refuses_an_unknown_precision_and_parses_the_ladder():
    with pytest.raises(quant.QuantRefused, match="no recipe"):
        quant.apply(torch.nn.Linear(2, 2), "Q4_1")
    assert quant.parse_precisions("int4, bf16") == ["fp32", "bf16", "int4"]
    with pytest.raises(ValueError, match="unknown precision int3"):
        quant.parse_precisions("fp32,int3")


def test_int8_records_are_what_stock_lm_eval_gives_for_the_same_quantized_model(tmp_path):
    """Parity holds for a quantized model: our engine (hf-trie) against stock HFLM through
    `lm_eval.simple_evaluate`, over the very same int8 model object."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model, tokenizer = load_model(build_tiny_model(tmp_path / "m"), device="cpu")
    ours = evaluate(None, model=model, tokenizer=tokenizer, precision="int8")
    assert ours.provenance["precision"]["precision"] == "int8"
    assert all(c["fallback_requests"] == 0 for c in ours.provenance["cost"].values())
    assert quant.is_quantized(model.lm_head.weight)  # quantized in place, what stock gets

    source = datasource.resolve("sample")
    yamls = source.write_yamls(TASKS, tmp_path / "yamls")
    stock = lm_eval.simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=CPU_BATCH_SIZE),
        tasks=[source.run_name(t) for t in TASKS],
        task_manager=TaskManager(include_path=str(yamls), include_defaults=False),
        num_fewshot=0,
        log_samples=True,
    )
    for task in TASKS:
        theirs = sorted(stock["samples"][source.run_name(task)], key=lambda s: s["doc_id"])
        mine = sorted(ours.task(task).samples, key=lambda s: s["doc_id"])
        assert [s["doc_id"] for s in mine] == [s["doc_id"] for s in theirs]
        for a, b in zip(mine, theirs, strict=True):
            for (ll_a, greedy_a), (ll_b, greedy_b) in zip(
                [r[0] for r in a["resps"]], [r[0] for r in b["resps"]], strict=True
            ):
                assert abs(ll_a - ll_b) <= 1e-4, (task, a["doc_id"], ll_a, ll_b)
                assert greedy_a == greedy_b


def test_int4_runs_lowered_to_xnnpack_and_int8_is_refused_there(tmp_path):
    """ExecuTorch lowers 8da4w to XNNPACK (embeddings through its quantized kernels); int8
    weight-only has no XNNPACK kernel and would run dequantized, so it is refused."""
    pytest.importorskip("executorch", reason="the executorch runtime: make install-executorch")
    from evaluator import latency

    model_dir = build_tiny_model(tmp_path / "m")
    quick = {"threads": 1, "runtime": "executorch", "warmup": 1, "repeats": 2,
             "decode_tokens": 8, "budget_s": 1}  # fmt: skip
    with pytest.raises(latency.ProbeError, match="no int8 weight-only"):
        latency.probe(model_dir, latency.ProbeSettings(precision="int8", **quick))
    result = latency.probe(model_dir, latency.ProbeSettings(precision="int4", **quick))
    assert result.decode_ms_p50 > 0
    assert result.environment["logits_max_abs_diff"] <= result.environment["logits_tolerance"]
    assert result.environment["export"]["precision"]["precision"] == "int4"
    fp32_bytes = quant.weights_bytes(load_model(model_dir, device="cpu")[0])[0]
    assert result.file_size_mb * 2**20 < fp32_bytes / 2  # the program holds packed weights


def test_bf16_runs_on_executorch_in_float16_and_says_so(tmp_path):
    """XNNPACK has no bfloat16 kernels (a bf16 program runs on portable kernels, 26x slower
    than fp32 at the 125M width), so the bf16 rung is lowered in float16, as on a CUDA device
    without bfloat16, and its scheme says which; eager PyTorch keeps bfloat16."""
    pytest.importorskip("executorch", reason="the executorch runtime: make install-executorch")
    from evaluator import latency

    model_dir = build_tiny_model(tmp_path / "m")
    quick = {"threads": 1, "warmup": 1, "repeats": 2, "decode_tokens": 8, "budget_s": 1}
    lowered = latency.probe(
        model_dir, latency.ProbeSettings(precision="bf16", runtime="executorch", **quick)
    )
    scheme = lowered.environment["export"]["precision"]["scheme"]
    assert scheme == "float16 weights and compute (XNNPACK has no bfloat16 kernels)"
    assert lowered.environment["logits_max_abs_diff"] <= lowered.environment["logits_tolerance"]
    eager = latency.probe(model_dir, latency.ProbeSettings(precision="bf16", **quick))
    assert eager.environment["precision"]["scheme"] == "bfloat16 weights and compute"


def test_a_half_precision_profile_gets_the_half_precision_tolerance():
    from evaluator.probe_worker import logits_tolerance

    assert logits_tolerance({"dtype": "float32", "precision": "fp32"}) == 1e-4
    assert logits_tolerance({"dtype": "float16", "precision": "fp32"}) == 0.05
    assert logits_tolerance({"dtype": "float32", "precision": "int4"}) == 0.05
