"""Measurement integrity (DESIGN §6, issue 8): a checkpoint's config cannot make us allocate
what its weights do not hold, no weight is random-initialised, non-finite weights or logits
are never scored, and no config key picks code. Real checkpoints on disk, the real loader;
the loads that a regression would blow up run in a child process under a memory cap."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evaluator.checkpoint import CheckpointError, Limits, inspect
from evaluator.modeling import load_model
from evaluator.tinymodel import TinySpec, build_tiny_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    spec = TinySpec(tied=False, share_repeats=2)
    return build_tiny_model(tmp_path_factory.mktemp("shared") / "shared", spec)


@pytest.fixture
def model(tiny, tmp_path) -> Path:
    """A copy of the tiny model that a test may spoil."""
    return Path(shutil.copytree(tiny, tmp_path / "model"))


def edit_config(model: Path, **changes) -> Path:
    path = model / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return model


def edit_weights(model: Path, change) -> Path:
    from safetensors.torch import load_file, save_file

    tensors = load_file(model / "model.safetensors")
    change(tensors)
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    return model


def refusal(model: Path, **limits) -> str:
    with pytest.raises(CheckpointError) as caught:
        inspect(model, Limits(**limits))
    assert not caught.value.transient
    return str(caught.value)


# --- the weights must be the model config.json describes -----------------------------------


def test_it_refuses_a_config_asking_for_more_layers_than_the_weights_hold(model):
    edit_config(model, num_hidden_layers=200)
    assert "config.json asks for 200 layers; the weights hold 2" in refusal(model)


def test_it_refuses_a_config_asking_for_a_million_layers_before_building_them(model):
    # Built on meta, a million layers would still take minutes: the count is checked first.
    edit_config(model, num_hidden_layers=10**6)
    assert "config.json asks for 1000000 layers; the weights hold 2" in refusal(model)


def test_it_refuses_weights_missing_one_tensor(model):
    edit_weights(model, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    message = refusal(model)
    assert "the weights lack model.layers.1.mlp.up_proj.weight" in message
    assert "nothing is random-initialised" in message


def test_it_refuses_a_tensor_the_model_has_no_place_for(model):
    import torch

    edit_weights(model, lambda t: t.update({"model.layers.0.evil.weight": torch.zeros(4)}))
    assert "the weights hold model.layers.0.evil.weight, which a llama model" in refusal(model)


def test_it_refuses_a_config_that_widens_the_feed_forward(model):
    edit_config(model, intermediate_size=4096)
    assert (
        "model.layers.0.mlp.gate_proj.weight has shape [128, 64] in the weights but "
        "config.json makes it [4096, 64]"
    ) in refusal(model)


def test_it_refuses_a_config_that_widens_the_hidden_size(model):
    # The 54 GB archive: weights for width 64, a config for width 65536.
    edit_config(model, hidden_size=65536, head_dim=16384)
    assert "has shape [512, 64] in the weights but config.json makes it [512, 65536]" in (
        refusal(model)
    )


def test_it_refuses_a_model_over_the_parameter_limit(tiny):
    message = refusal(tiny, max_params=1000)
    assert "parameters and buffers" in message
    assert "over this site's limit of 1,000" in message


def test_it_counts_the_parameters_that_run(tiny, shared):
    import torch

    for model_dir in (tiny, shared):
        info = inspect(model_dir)
        model, _ = load_model(model_dir, device="cpu")
        ran = sum(p.numel() for p in model.parameters())  # a tied or shared tensor once
        assert info.params_total == ran
        assert all(p.device == torch.device("cpu") for p in model.parameters())


def test_it_accepts_a_tied_model_without_a_stored_head_and_a_shared_one(tiny, shared):
    assert inspect(tiny).tied_embeddings
    assert inspect(shared).layer_sharing == {"scheme": "immediate_block_wise", "repeats": 2}


def test_the_loader_refuses_a_folder_with_a_missing_weight_even_without_inspect(model):
    edit_weights(model, lambda t: t.pop("model.norm.weight"))
    with pytest.raises(CheckpointError, match="the weights lack model.norm.weight"):
        load_model(model, device="cpu")


# --- non-finite weights and logits ---------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_it_refuses_weights_holding_non_finite_values(model, value, tmp_path):
    from evaluator.checkpoint import values

    def spoil(t):
        t["model.layers.1.self_attn.o_proj.weight"][3, 5] = value

    edit_weights(model, spoil)
    inspect(model)  # the headers are fine: it is the values that are not
    with pytest.raises(CheckpointError) as caught:
        values.check_finite([model / "model.safetensors"])
    assert "model.layers.1.self_attn.o_proj.weight holds NaN or infinite values" in str(
        caught.value
    )


def test_it_refuses_finite_weights_whose_logits_are_not(model):
    # Each weight is finite, but final norm (3e38) times output head (3e38) overflows float32.
    def overflow(t):
        t["model.norm.weight"].fill_(3e38)
        t["lm_head.weight"] = t["model.embed_tokens.weight"].clone().fill_(3e38)

    edit_weights(edit_config(model, tie_word_embeddings=False), overflow)
    inspect(model)
    with pytest.raises(CheckpointError, match="first forward pass gives non-finite logits"):
        load_model(model, device="cpu")


# --- config keys that pick code ------------------------------------------------------------

CODE_KEYS = [
    ({"_attn_implementation": "kernels-community/flash-attn"}, "picks its own implementation"),
    ({"attn_implementation": "org/evil-kernel"}, "(attn_implementation: 'org/evil-kernel')"),
    ({"experts_implementation": "org/moe"}, "picks its own implementation"),
    (
        {"quantization_config": {"quant_method": "gptq", "bits": 4}},
        "has a quantization_config (quant_method 'gptq')",
    ),
    ({"use_kernels": True}, "asks for kernels (use_kernels)"),
    ({"fusion_config": {"rms_norm": True}}, "asks for kernels (fusion_config)"),
    ({"text_config": {"kernel_config": {"x": "org/k"}}}, "asks for kernels (kernel_config)"),
    ({"custom_pipelines": {"x": {"impl": "m.P"}}}, "asks for custom code"),
]


@pytest.mark.parametrize(("changes", "message"), CODE_KEYS)
def test_it_refuses_config_keys_that_pick_code(model, changes, message):
    edit_config(model, **changes)
    assert message in refusal(model)


def test_it_accepts_a_stock_attention_name_and_runs_its_own_choice(model):
    edit_config(model, _attn_implementation="eager")
    inspect(model)
    loaded, _ = load_model(model, device="cpu")
    assert loaded.config._attn_implementation == "sdpa"


# --- tokenizer files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json", "merges.txt"])
def test_it_refuses_an_oversized_tokenizer_file_before_parsing_it(model, name):
    # Not JSON at all: a cap checked after parsing would say "not valid JSON" instead.
    (model / name).write_bytes(b"x" * 40000)
    assert f"{name} is 39.1 KiB, over this site's 32.0 KiB limit" in refusal(
        model, max_tokenizer_bytes=32 * 1024
    )


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        ("added_tokens.json", {"<evil>": 70000}),
        ("tokenizer_config.json", {"added_tokens_decoder": {"70000": {"content": "<evil>"}}}),
    ],
)
def test_it_refuses_an_added_token_id_past_the_embedding(model, name, doc):
    path = model / name
    old = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**old, **doc}))
    assert "the tokenizer has token id 70000 but the model embeds only 512" in refusal(model)


def test_it_refuses_a_token_id_past_the_embedding(model):
    doc = json.loads((model / "tokenizer.json").read_text())
    doc["model"]["vocab"]["zzzz"] = 10**6
    (model / "tokenizer.json").write_text(json.dumps(doc))
    assert "the tokenizer has token id 1000000 but the model embeds only 512" in refusal(model)


# --- what a regression would cost: the same refusals under a memory cap --------------------

CAPPED = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))
    from evaluator.checkpoint import CheckpointError, inspect
    from evaluator.modeling import load_model
    for model_dir in sys.argv[1:]:
        for step in (inspect, lambda d: load_model(d, device="cpu")):
            try:
                step(model_dir)
                print("ACCEPTED")
            except CheckpointError as exc:
                print("REFUSED", exc)
            except MemoryError:
                print("EXHAUSTED")
            except RuntimeError as exc:  # torch's allocator: "can't allocate memory"
                print("EXHAUSTED" if "alloc" in str(exc) else f"ERROR {exc}")
    """
)
# Configs that would each allocate far more than the cap if transformers believed them.
GREEDY_CONFIGS = {
    "54 GB: 200 layers, width 16384": (
        {"hidden_size": 16384, "intermediate_size": 65536, "num_hidden_layers": 200},
        "config.json asks for 200 layers; the weights hold 2",
    ),
    "width 65536": (
        {"hidden_size": 65536, "head_dim": 16384},
        "has shape [512, 64] in the weights but config.json makes it [512, 65536]",
    ),
    "feed-forward 10^7 wide": (
        {"intermediate_size": 10**7},
        "config.json makes it [10000000, 64]",
    ),
    "vocabulary 10^8": ({"vocab_size": 10**8}, "but config.json says vocab_size=100000000"),
}


def test_configs_that_ask_for_huge_models_are_refused_under_a_3_gib_cap(tiny, tmp_path):
    dirs = []
    for i, (changes, _) in enumerate(GREEDY_CONFIGS.values()):
        dirs.append(edit_config(Path(shutil.copytree(tiny, tmp_path / f"m{i}")), **changes))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CAPPED, *map(str, dirs)],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    lines = [line for line in out.stdout.splitlines() if line]
    assert len(lines) == 2 * len(dirs), (out.stdout, out.stderr[-3000:])
    for i, (case, (_, message)) in enumerate(GREEDY_CONFIGS.items()):
        fetched, loaded = lines[2 * i : 2 * i + 2]
        assert fetched.startswith("REFUSED") and message in fetched, (case, fetched)
        # The loader refuses too (the vocabulary case through the meta-device check).
        assert loaded.startswith("REFUSED"), (case, loaded)
