"""Parity: our evaluate() gives what stock lm-eval gives, request by request.

This guards every change to the evaluation engine, for both engines (hf-trie, the default,
and stock HFLM) and for four architectures: the project's tiny Llama (rotary positions), a
tiny GPT-2 (learned absolute positions, Conv1D), a tiny GPT-NeoX (partial rotary, parallel
residual) and a layer-sharing Llama. The stock side is lm-eval's own entry point with a model
path, as a user would run it (`lm_eval --model hf --model_args pretrained=DIR,dtype=float32
--include_path <generated yamls> --tasks ...`): all tasks in one call, lm-eval loading the
model itself. Transformers knows nothing of layer sharing, so for that model stock HFLM is
handed the model our loader built. Ours loads the model through evaluator.modeling, runs task
by task, and reports progress. Every logged request must agree within 1e-4 in
log-likelihood, with the same greedy flag, and every metric must agree.

PARITY_DATA=hub|sample|DIR (default: sample) runs the same check on other data, e.g. on an
exported full benchmark on a machine with time to spare.
"""

from __future__ import annotations

import os

import pytest
import torch

from evaluator import datasource
from evaluator.harness import CPU_BATCH_SIZE, TASKS, evaluate
from evaluator.modeling import load_model
from evaluator.tinymodel import TinySpec, build_tiny_model

DATA = os.environ.get("PARITY_DATA", "sample")
LL_TOLERANCE = 1e-4
MODELS = {
    "llama": TinySpec(),
    "gpt2": TinySpec(arch="gpt2", hidden=64, heads=4, kv_heads=4, ffn=128),
    "gpt_neox": TinySpec(arch="gpt_neox", hidden=64, heads=4, kv_heads=4, ffn=128),
    "llama-shared": TinySpec(layers=2, share_repeats=2, seed=3),
}
CASES = [("llama", "fast"), ("llama", "stock"), ("gpt2", "fast"), ("gpt_neox", "fast"),
         ("llama-shared", "fast")]  # fmt: skip


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def runs(request, tmp_path_factory):
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    arch, engine = request.param
    # Speed only: a 64-wide model is many times faster on one thread than on several.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model_dir = build_tiny_model(tmp_path_factory.mktemp(arch), MODELS[arch])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ours = evaluate(model_dir, data=DATA, device=device, batch_size=CPU_BATCH_SIZE, engine=engine)
    assert ours.provenance["engine"]["name"] == engine
    if engine == "fast":  # the fast path ran, not its fallback
        assert all(c["fallback_requests"] == 0 for c in ours.provenance["cost"].values())

    source = datasource.resolve(DATA)
    if source.kind == "hub":
        manager = TaskManager()
    else:
        # The generated yamls name their stock parents by absolute path, so indexing the
        # built-in tasks as well (what --include_path does) would only cost seconds.
        yamls = source.write_yamls(TASKS, tmp_path_factory.mktemp("yamls"))
        manager = TaskManager(include_path=str(yamls), include_defaults=False)
    if MODELS[arch].share_repeats > 1:
        model, tokenizer = load_model(model_dir, device=device)
        model_args = {"model": HFLM(pretrained=model, tokenizer=tokenizer,
                                    batch_size=CPU_BATCH_SIZE)}  # fmt: skip
    else:
        model_args = {"model": "hf", "model_args": f"pretrained={model_dir},dtype=float32"}
    stock = lm_eval.simple_evaluate(
        **model_args,
        tasks=[source.run_name(t) for t in TASKS],
        task_manager=manager,
        num_fewshot=0,
        batch_size=CPU_BATCH_SIZE,
        device=device,
        log_samples=True,
    )
    torch.set_num_threads(threads)
    return source, ours, stock


@pytest.mark.parametrize("task", TASKS)
def test_every_request_has_the_stock_log_likelihood(runs, task):
    source, ours, stock = runs
    theirs = sorted(stock["samples"][source.run_name(task)], key=lambda s: s["doc_id"])
    mine = sorted(ours.task(task).samples, key=lambda s: s["doc_id"])
    assert [s["doc_id"] for s in mine] == [s["doc_id"] for s in theirs]
    assert len(mine) == ours.task(task).n > 0
    for a, b in zip(mine, theirs, strict=True):
        # Same prompts and continuations, in the same order...
        assert a["arguments"] == [list(args) for args in b["arguments"]]
        assert a["target"] == b["target"]
        # ...and the same answer to each.
        for (ll_a, greedy_a), (ll_b, greedy_b) in zip(
            [r[0] for r in a["resps"]], [r[0] for r in b["resps"]], strict=True
        ):
            assert abs(ll_a - ll_b) <= LL_TOLERANCE, (task, a["doc_id"], ll_a, ll_b)
            assert greedy_a == greedy_b


@pytest.mark.parametrize("task", TASKS)
def test_every_metric_is_the_stock_metric(runs, task):
    source, ours, stock = runs
    name = source.run_name(task)
    theirs = stock["results"][name]
    mine = ours.task(task)
    expected = {
        key.split(",")[0]: value
        for key, value in theirs.items()
        if "," in key and "_stderr," not in key
    }
    assert set(mine.metrics) == set(expected)
    for metric, (value, stderr) in mine.metrics.items():
        assert value == pytest.approx(expected[metric], abs=1e-12), metric
        assert stderr == pytest.approx(theirs[f"{metric}_stderr,none"], abs=1e-12), metric
    assert mine.n == stock["n-samples"][name]["effective"]
    assert mine.version == stock["versions"][name]
