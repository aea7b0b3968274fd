"""The hf-trie engine against stock HFLM on the edge cases of lm-eval's request format, its
packing on its own, its fallback, and its use from lm-eval's own entry points.

Whole-task parity on the sample set, per architecture, is tests/test_parity.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from evaluator.engine import NAME, TrieLM, packing
from evaluator.modeling import load_model
from evaluator.tinymodel import TinySpec, build_tiny_model

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), TinySpec(max_positions=64))


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model(model_dir, device="cpu")


class Hook:
    """Counts lm-eval's per-request cache-hook calls (what progress hangs on)."""

    dbdict = None

    def __init__(self):
        self.calls = []

    def add_partial(self, attr, req, res):
        self.calls.append((attr, req, res))


def answers(lm, pairs):
    hook = Hook()
    lm.set_cache_hook(hook)
    reqs = [
        Instance("loglikelihood", doc={}, arguments=(ctx, cont), idx=i, metadata=("t", i, 1))
        for i, (ctx, cont) in enumerate(pairs)
    ]
    return lm.loglikelihood(reqs, disable_tqdm=True), hook


def both(loaded, pairs, **kwargs):
    model, tokenizer = loaded
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, **kwargs)
    ours = TrieLM(pretrained=model, tokenizer=tokenizer, batch_size=4, **kwargs)
    (theirs, _), (mine, hook) = answers(stock, pairs), answers(ours, pairs)
    return mine, theirs, hook, ours


def assert_same(mine, theirs):
    assert len(mine) == len(theirs)
    for (a, ga), (b, gb) in zip(mine, theirs, strict=True):
        assert abs(a - b) <= TOL, (a, b)
        assert ga == gb


QUESTION = "Which tool cuts wood best?"
CHOICES = [" a saw", " a spoon", " a feather and some string", " glue"]


def test_the_choices_of_one_question_share_their_context_and_match_stock(loaded):
    mine, theirs, hook, lm = both(loaded, [(QUESTION, c) for c in CHOICES])
    assert_same(mine, theirs)
    # One forward for the whole question, the context counted once.
    assert lm.cost.forwards == 1
    ctx = len(lm.tok_encode(QUESTION))
    assert lm.cost.tokens_forwarded < ctx * len(CHOICES)
    # One cache-hook call per request, with the request's own strings.
    assert [call[1] for call in hook.calls] and len(hook.calls) == len(CHOICES)
    assert {call[1] for call in hook.calls} == {(QUESTION, c) for c in CHOICES}


def test_an_empty_context_gets_the_prefix_token_as_in_stock(loaded):
    mine, theirs, _, _ = both(loaded, [("", "The sun is hot."), ("", "Ice is cold.")])
    assert_same(mine, theirs)


def test_one_token_and_longer_continuations_match_stock(loaded):
    model, tokenizer = loaded
    one = tokenizer.decode([tokenizer.encode(" yes")[0]])
    pairs = [("Is water wet? Answer:", one), ("Is water wet? Answer:", " no, never at all")]
    mine, theirs, _, _ = both(loaded, pairs)
    assert_same(mine, theirs)


def test_a_request_longer_than_the_model_is_truncated_from_the_left_as_in_stock(loaded):
    long = " ".join(["the river carries sand to the sea"] * 30)
    pairs = [(long, " and the sea is salt"), (long, " and the hills are high"), ("Hi", " there")]
    mine, theirs, _, lm = both(loaded, pairs, max_length=48)
    assert len(lm.tok_encode(long)) > 48  # the case really truncates
    assert_same(mine, theirs)


def test_duplicate_requests_get_identical_answers(loaded):
    pairs = [(QUESTION, CHOICES[0])] * 3 + [(QUESTION, CHOICES[1])]
    mine, theirs, hook, _ = both(loaded, pairs)
    assert_same(mine, theirs)
    assert mine[0] == mine[1] == mine[2]
    assert len(hook.calls) == 4


def test_a_batch_mixing_tasks_keeps_the_request_order(loaded):
    pairs = [
        ("The trophy didn't fit in the suitcase because the trophy", " was too big."),
        ("The trophy didn't fit in the suitcase because the suitcase", " was too big."),
        ("Question: is the sky blue?\nAnswer:", " yes"),
        ("Question: is the sky blue?\nAnswer:", " no"),
        *[(QUESTION, c) for c in CHOICES],
        ("Goal: boil water\nSolution:", " put a pot on the stove"),
    ]
    mine, theirs, _, _ = both(loaded, pairs)
    assert_same(mine, theirs)


def test_a_model_that_ignores_the_tree_mask_falls_back_to_the_stock_loop(loaded):
    model, tokenizer = loaded
    original = model.forward

    def forward(*args, **kwargs):  # an architecture that drops custom masks and positions
        kwargs.pop("attention_mask", None), kwargs.pop("position_ids", None)
        return original(*args, **kwargs)

    model.forward = forward
    try:
        mine, theirs, _, lm = both(loaded, [(QUESTION, c) for c in CHOICES])
    finally:
        del model.forward
    assert_same(mine, theirs)
    assert lm.cost.fallback_requests == len(CHOICES)
    assert any("differs" in reason for reason in lm.cost.reasons)


def test_out_of_memory_halves_the_forward_budget_and_loses_nothing(loaded):
    """A GPU's out-of-memory error (raised here by the model for forwards over a token
    budget: no GPU runs these tests) halves the tokens a forward and splits the batch again,
    as HFLM's batch_size=auto does; answers, order and counts stay the stock loop's."""
    model, tokenizer = loaded
    original = model.forward
    seen = []

    def forward(*args, **kwargs):
        tokens = kwargs["input_ids"].numel()
        seen.append(tokens)
        if tokens > 40:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(*args, **kwargs)

    pairs = [(f"{QUESTION} ({k})", c) for k in range(4) for c in CHOICES]
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4)
    theirs, _ = answers(stock, pairs)
    ours = TrieLM(pretrained=model, tokenizer=tokenizer, batch_size=4, row_tokens=16,
                  forward_tokens=256)  # fmt: skip
    ours._checked = True  # the self-check's forwards would hit the limit first
    model.forward = forward
    try:
        mine, hook = answers(ours, pairs)
    finally:
        del model.forward
    assert_same(mine, theirs)
    assert len(hook.calls) == len(pairs)
    assert max(seen) > 40 and ours.forward_tokens <= 40  # it ran out, then fitted
    assert ours.cost.tokens_padded == sum(t for t in seen if t <= 40)  # failures not counted

    def refuse(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    model.forward = refuse
    try:
        with pytest.raises(RuntimeError, match="illegal memory access"):
            answers(ours, pairs)  # any other error is the run's, not retried
    finally:
        del model.forward


def test_packing_forwards_each_shared_prefix_once():
    a, b, c = [1, 2, 3, 4], [1, 2, 3, 5, 6], [7, 8]
    requests = [(a, [9]), (b, [9, 9]), (c, [9]), (a, [9])]
    rows = packing.pack(requests, max_length=100, row_tokens=64)
    assert len(rows) == 1
    row = rows[0]
    inputs = [packing.model_input(x, y, 100) for x, y in requests]
    assert len(row) == packing.unique_trie_tokens(inputs)
    for i, nodes, target in row.scored:
        # The path to the last scored node spells the request's input; depth is position.
        path, node = [], nodes[-1]
        while node >= 0:
            path.append(node)
            node = row.parents[node]
        assert [row.tokens[n] for n in reversed(path)] == inputs[i]
        assert [row.positions[n] for n in reversed(path)] == list(range(len(inputs[i])))
        assert target == requests[i][1]
        assert nodes == list(reversed(path))[len(inputs[i]) - len(target) :]


def test_rows_stay_within_their_budget_and_cut_where_least_is_shared():
    # Two questions of 10 context tokens and 3 answers of 5 tokens: 25 tokens each.
    def question(q):
        return [(list(range(q, q + 10)), [100 + q + k] * 5) for k in range(3)]

    requests = question(0) + question(50)
    rows = packing.pack(requests, max_length=100, row_tokens=30)
    assert [len(r) for r in rows] == [10 + 3 * 4, 10 + 3 * 4]  # one question a row
    assert sorted(i for r in rows for i, _, _ in r.scored) == list(range(6))
    batches = packing.batches(rows, max_tokens=44)
    assert [len(b) for b in batches] == [2]


def test_the_engine_is_registered_with_lm_evals_model_registry(model_dir):
    import lm_eval

    from evaluator.datasource import resolve

    source = resolve("sample")
    result = lm_eval.simple_evaluate(
        model=NAME,
        model_args=f"pretrained={model_dir},dtype=float32",
        tasks=["arc_easy_sample"],
        task_manager=source.task_manager(str(_yamls(source))),
        num_fewshot=0,
        batch_size=4,
        limit=4,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    assert result["config"]["model"] == NAME
    assert 0.0 <= result["results"]["arc_easy_sample"]["acc,none"] <= 1.0


def _yamls(source):
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="engine-yamls-"))
    source.write_yamls(["arc_easy"], out)
    return out


def test_python_m_evaluator_engine_is_lm_evals_command_line(model_dir, tmp_path):
    from evaluator.datasource import resolve

    source = resolve("sample")
    source.write_yamls(["arc_easy"], tmp_path / "yamls")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "evaluator.engine", "run", "--model", NAME,
         "--model_args", f"pretrained={model_dir},dtype=float32",
         "--include_path", str(tmp_path / "yamls"), "--tasks", "arc_easy_sample",
         "--limit", "4", "--batch_size", "4", "--device", "cpu",
         "--output_path", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = list(out.rglob("results_*.json"))
    assert written, proc.stdout[-2000:]
    doc = json.loads(written[0].read_text())
    assert doc["config"]["model"] == NAME
    assert "arc_easy_sample" in doc["results"]


def test_compiled_templates_render_every_prompt_as_lm_eval_does(tmp_path):
    """lm-eval's templates are compiled once (evaluator/engine/templates.py): every prompt,
    target and choice list of the eight tasks' sample documents renders exactly as with
    lm-eval's own compile-per-call function."""
    from lm_eval import utils as lm_utils

    from evaluator.datasource import resolve
    from evaluator.engine import templates
    from evaluator.harness import TASKS

    assert lm_utils.apply_template is templates.apply_template  # installed on import
    source = resolve("sample")
    source.write_yamls(TASKS, tmp_path)
    loaded = source.task_manager(tmp_path).load([source.run_name(t) for t in TASKS])

    def render_all():
        out = []
        for task in loaded["tasks"].values():
            for doc in task.eval_docs:
                out.append((task.doc_to_text(doc), task.doc_to_target(doc)))
                out.append(task.doc_to_choice(doc))
        return out

    templates._compiled.cache_clear()
    cached = render_all()
    info = templates._compiled.cache_info()
    assert info.misses <= 3 * 8 and info.hits > 20 * info.misses  # compiled once, reused
    lm_utils.apply_template = templates._stock_apply_template
    try:
        stock = render_all()
    finally:
        templates.install()
    assert len(cached) == 2 * 8 * 40 and cached == stock
