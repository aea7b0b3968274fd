"""MobileLLM-LS immediate block-wise layer sharing in evaluator.modeling."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from evaluator.modeling import build_model, load_model, read_weights
from evaluator.tinymodel import TinySpec, build_tiny_model

BLOCKS = 3
PROMPT = torch.tensor([[1, 17, 42, 99, 7, 250, 3, 64]])


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    spec = TinySpec(layers=BLOCKS, hidden=64, heads=4, kv_heads=2, share_repeats=2, seed=1)
    return build_tiny_model(tmp_path_factory.mktemp("ls"), spec)


@pytest.fixture(scope="module")
def shared_model(shared_dir):
    model, _ = load_model(shared_dir, device="cpu")
    return model


def unshared_copy(shared_dir) -> LlamaForCausalLM:
    """A 2N-layer model with its own copies of the stored blocks, arranged 0, 0, 1, 1, ..."""
    config = json.loads((shared_dir / "config.json").read_text())
    del config["layer_sharing"]
    config["num_hidden_layers"] = 2 * BLOCKS
    model = LlamaForCausalLM(LlamaConfig.from_dict(config)).eval()
    stored = read_weights(shared_dir)
    arranged = {}
    for key, tensor in stored.items():
        if key.startswith("model.layers."):
            block, rest = key.removeprefix("model.layers.").split(".", 1)
            for repeat in range(2):
                arranged[f"model.layers.{2 * int(block) + repeat}.{rest}"] = tensor.clone()
        else:
            arranged[key] = tensor.clone()
    missing, unexpected = model.load_state_dict(arranged, strict=False)
    assert set(missing) <= {"lm_head.weight"} and not unexpected
    model.tie_weights()
    return model


def test_the_checkpoint_stores_n_blocks_and_declares_the_sharing(shared_dir):
    config = json.loads((shared_dir / "config.json").read_text())
    keys = read_weights(shared_dir)
    layer_keys = {k.split(".")[2] for k in keys if k.startswith("model.layers.")}
    assert config["num_hidden_layers"] == BLOCKS and len(layer_keys) == BLOCKS
    assert config["layer_sharing"] == {"scheme": "immediate_block_wise", "repeats": 2}


def test_it_runs_twice_as_many_layers_each_with_its_own_cache_index(shared_model):
    layers = shared_model.model.layers
    assert shared_model.config.num_hidden_layers == len(layers) == 2 * BLOCKS
    assert [layer.self_attn.layer_idx for layer in layers] == list(range(2 * BLOCKS))


def test_repeated_layers_share_the_same_tensors(shared_model):
    layers = shared_model.model.layers
    for i in range(0, 2 * BLOCKS, 2):
        first, second = layers[i], layers[i + 1]
        assert first.self_attn.q_proj.weight is second.self_attn.q_proj.weight
        assert first.mlp.down_proj.weight is second.mlp.down_proj.weight
        assert first.input_layernorm.weight is second.input_layernorm.weight
    assert layers[0].self_attn.q_proj.weight is not layers[2].self_attn.q_proj.weight


def test_the_parameter_count_is_that_of_the_stored_blocks(shared_dir, shared_model):
    stored = sum(t.numel() for t in read_weights(shared_dir).values())
    assert sum(p.numel() for p in shared_model.parameters()) == stored


def test_it_computes_the_same_logits_as_an_unshared_model_with_copied_blocks(
    shared_dir, shared_model
):
    with torch.no_grad():
        expected = unshared_copy(shared_dir)(PROMPT).logits
        actual = shared_model(PROMPT).logits
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_cached_decoding_matches_full_forwards(shared_model):
    steps = 4
    with torch.no_grad():
        generated = shared_model.generate(
            PROMPT, max_new_tokens=steps, do_sample=False, min_new_tokens=steps
        )
        ids = PROMPT
        for _ in range(steps):
            next_id = shared_model(ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
    assert torch.equal(generated, ids)


def test_each_cached_step_gives_the_full_forward_logits(shared_model):
    with torch.no_grad():
        full = shared_model(PROMPT, use_cache=False).logits
        out = shared_model(PROMPT[:, :5], use_cache=True)
        cache, steps = out.cache, [out.logits]
        for pos in range(5, PROMPT.shape[1]):
            out = shared_model(PROMPT[:, pos : pos + 1], cache=cache, use_cache=True)
            cache = out.cache
            steps.append(out.logits)
    assert len(cache.layers) == 2 * BLOCKS
    assert cache.get_seq_length() == PROMPT.shape[1]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_build_model_and_load_model_give_the_same_model(shared_dir, shared_model):
    config = json.loads((shared_dir / "config.json").read_text())
    built = build_model(config, read_weights(shared_dir))
    with torch.no_grad():
        torch.testing.assert_close(built(PROMPT).logits, shared_model(PROMPT).logits)


@pytest.mark.parametrize(
    ("sharing", "message"),
    [
        ({"scheme": "interleaved", "repeats": 2}, "unknown layer_sharing scheme"),
        ({"scheme": "immediate_block_wise", "repeats": 0}, "repeats must be an integer"),
        ({"scheme": "immediate_block_wise", "repeats": "2"}, "repeats must be an integer"),
        ({"scheme": "immediate_block_wise", "repeats": True}, "repeats must be an integer"),
        ({"scheme": "immediate_block_wise"}, "repeats must be an integer"),
        ("immediate_block_wise", "must be an object"),
    ],
)
def test_it_refuses_a_malformed_sharing_spec(shared_dir, sharing, message):
    config = json.loads((shared_dir / "config.json").read_text())
    config["layer_sharing"] = sharing
    with pytest.raises(ValueError, match=message):
        build_model(config, read_weights(shared_dir))


def test_load_model_refuses_an_unknown_scheme(shared_dir, tmp_path):
    for path in shared_dir.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    config = json.loads((tmp_path / "config.json").read_text())
    config["layer_sharing"]["scheme"] = "cross_block"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown layer_sharing scheme 'cross_block'"):
        load_model(tmp_path, device="cpu")


def test_it_refuses_sharing_for_an_architecture_it_does_not_know(shared_dir):
    config = json.loads((shared_dir / "config.json").read_text())
    config["model_type"] = "gpt2"
    with pytest.raises(ValueError, match="supported for llama models, not 'gpt2'"):
        build_model(config, {})
