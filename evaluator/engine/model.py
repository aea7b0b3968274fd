"""`hf-trie`: lm-eval's HF model with a prefix-sharing log-likelihood loop.

Everything but the forward pass is HFLM's own: the tokenisation and `_encode_pair` split
(in `loglikelihood`), truncation, result order and the per-request cache hook. Only
`_loglikelihood_tokens` differs: requests are packed as token tries (packing.py), one
forward per batch of rows with a tree-shaped 4-D mask and explicit position ids, and the LM
head and log-softmax run only at the positions some request scores (`logits_to_keep` as a
boolean mask, so model-specific logit processing such as soft-capping still applies).

A forward that runs out of memory halves the tokens per forward and splits its batch again.

What this path cannot do exactly goes to HFLM's own loop, request by request: seq2seq
models, rolling log-likelihoods (perplexity), sliding-window attention shorter than an
input, and any model whose packed forward disagrees with its plain one on a self-check run
once per model (an architecture that ignores a custom 4-D mask or explicit positions).
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils.memory import should_reduce_batch_size
from lm_eval.api.model import CacheHook
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils_hf import clear_torch_cache

from evaluator.engine import packing

log = logging.getLogger(__name__)

NAME = "hf-trie"
# Bumped whenever a change could move a number: it is recorded with every run.
VERSION = "2"  # 2: 1,024 tokens a forward on a CPU (was 2,048)
# Tokens per packed row and padded tokens per forward. Measured on a 2-core CPU with a
# MobileLLM-125M-shaped model (bench/README.md): rows of a few hundred tokens keep the
# quadratic mask cheap next to the MLPs. Per token, a forward of 2 to 8 rows costs the same
# (2.0-2.1 ms measured), and fewer rows a forward pad less (rows of similar length batched):
# 1,024 tokens a forward padded 4.4 % fewer tokens than 2,048 on the sample set.
CPU_ROW_TOKENS, CPU_FORWARD_TOKENS = 256, 1024
CUDA_ROW_TOKENS, CUDA_FORWARD_TOKENS = 1024, 16384
# The self-check's tolerance: the parity gate's.
SELF_CHECK_TOL = 1e-4


@dataclass
class Cost:
    """What the loop did since the last reset: the figures each run records per task."""

    requests: int = 0
    tokens_forwarded: int = 0  # real tokens through the model (padding excluded)
    tokens_padded: int = 0  # rows x padded length, as the model saw them
    forwards: int = 0
    fallback_requests: int = 0
    reasons: set[str] = field(default_factory=set)

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "reasons"}
        return {**out, "fallback_reasons": sorted(self.reasons)}


class TrieLM(HFLM):
    """HFLM with prefix sharing; `row_tokens` / `forward_tokens` may be passed as
    model_args (`--model_args pretrained=DIR,forward_tokens=4096`)."""

    def __init__(self, *args, row_tokens: int | None = None, forward_tokens: int | None = None,
                 **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        cuda = self.device.type == "cuda"
        self.row_tokens = int(row_tokens or (CUDA_ROW_TOKENS if cuda else CPU_ROW_TOKENS))
        self.forward_tokens = int(
            forward_tokens or (CUDA_FORWARD_TOKENS if cuda else CPU_FORWARD_TOKENS)
        )
        self.cost = Cost()
        # Most causal LMs take logits_to_keep; for the rest the logits are selected after.
        self._takes_keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self._unsupported: str | None = None
        self._checked = False

    # --- lm-eval entry point ------------------------------------------------------------

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        reason = self._why_not(requests)
        self.cost.requests += len(requests)
        if reason is not None:
            self.cost.fallback_requests += len(requests)
            self.cost.reasons.add(reason)
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        return self._packed(requests, self.cache_hook)

    def _why_not(self, requests) -> str | None:
        if self.backend != "causal":
            return "seq2seq model"
        if any(key is None for key, _, _ in requests):
            return "rolling log-likelihood"
        window = getattr(self.model.config, "sliding_window", None)
        if window and any(len(c) + len(t) - 1 > window for _, c, t in requests):
            return f"sliding-window attention ({window}) shorter than an input"
        if not self._checked:
            self._checked = True
            self._unsupported = self._self_check()
            if self._unsupported:
                log.warning("%s falls back to HFLM's loop: %s", NAME, self._unsupported)
        return self._unsupported

    # --- the packed loop ----------------------------------------------------------------

    def _packed(self, requests, hook) -> list[tuple[float, bool]]:
        pairs = [(ctx, cont) for _, ctx, cont in requests]
        for _, ctx, cont in requests:  # HFLM's own sanity checks
            assert len(ctx) > 0 and len(cont) > 0 and len(cont) <= self.max_length
        rows = packing.pack(pairs, self.max_length, self.row_tokens)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        pending = deque(packing.batches(rows, self.forward_tokens))
        while pending:
            batch = pending.popleft()
            try:
                answers = self._forward(batch)
            except Exception as exc:
                if len(batch) == 1 or not should_reduce_batch_size(exc):
                    raise
                # Out of memory: halve the budget for the rest of the run and split this batch
                # again (what HFLM's batch_size=auto does by batch size; accelerate's test for
                # an out-of-memory error). Nothing of the failed forward was counted.
                self.forward_tokens = max(len(batch[0]), self.forward_tokens // 2)
                log.warning("%s: out of memory, %d tokens a forward now", NAME, self.forward_tokens)
                clear_torch_cache()
                pending.extendleft(reversed(packing.batches(batch, self.forward_tokens)))
                continue
            for i, answer in answers:
                results[i] = answer
                hook.add_partial("loglikelihood", requests[i][0], answer)
        return results  # type: ignore[return-value]

    def _forward(self, batch: list[packing.Row]) -> list[tuple[int, tuple[float, bool]]]:
        """One forward over a batch of rows: (request index, (log-likelihood, is_greedy))."""
        length = len(batch[0])
        ids = torch.zeros(len(batch), length, dtype=torch.long)
        pos = torch.zeros(len(batch), length, dtype=torch.long)
        keep = torch.zeros(len(batch), length, dtype=torch.bool)
        allowed = np.zeros((len(batch), length, length), dtype=bool)
        for b, row in enumerate(batch):
            n = len(row)
            ids[b, :n] = torch.tensor(row.tokens)
            pos[b, :n] = torch.tensor(row.positions)
            allowed[b] = _tree_mask(row.parents, length)
            for _, nodes, _ in row.scored:
                keep[b, nodes] = True
        # boolean logits_to_keep flattens row-major: the k-th True is the k-th logit row.
        where = {(b, node): k for k, (b, node) in enumerate(keep.nonzero().tolist())}
        logprobs = F.log_softmax(
            self._scored_logits(ids, pos, allowed, keep), dim=-1, dtype=self.softmax_dtype
        )
        self.cost.tokens_forwarded += sum(len(row) for row in batch)
        self.cost.tokens_padded += len(batch) * length
        self.cost.forwards += 1
        answers = []
        for b, row in enumerate(batch):
            for i, nodes, target in row.scored:
                lp = logprobs[[where[(b, node)] for node in nodes]]  # [len(cont), vocab]
                cont = torch.tensor(target, dtype=torch.long, device=lp.device)
                greedy = bool((lp.argmax(dim=-1) == cont).all())
                answers.append((i, (float(lp.gather(1, cont[:, None]).squeeze(1).sum()), greedy)))
        return answers

    def _scored_logits(self, ids, pos, allowed, keep) -> torch.Tensor:
        """The model's logits at the kept positions, [kept, vocab]."""
        dtype = self.model.dtype if self.model.dtype.is_floating_point else torch.float32
        # Additive mask (0 where allowed): eager and SDPA attention both take it as is.
        mask = torch.full(allowed.shape, torch.finfo(dtype).min, dtype=dtype)
        mask.masked_fill_(torch.from_numpy(allowed), 0.0)
        device = self.device
        kwargs = dict(
            input_ids=ids.to(device),
            attention_mask=mask[:, None].to(device),
            position_ids=pos.to(device),
            use_cache=False,
        )
        takes_keep = self._takes_keep
        if takes_keep:
            kwargs["logits_to_keep"] = keep.to(device)
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            logits = self.model(**kwargs).logits
        return logits if takes_keep else logits[keep.to(device)]

    # --- exactness guard ----------------------------------------------------------------

    def _self_check(self) -> str | None:
        """None if the packed forward equals HFLM's loop on a few synthetic requests that
        share prefixes; else the reason to use HFLM's loop for this model."""
        vocab = min(self.model.config.vocab_size, len(self.tokenizer))
        gen = torch.Generator().manual_seed(0)
        tok = torch.randint(1, vocab, (24,), generator=gen).tolist()
        reqs = [
            (("a", "b"), tok[:8], tok[8:11]),  # a shared context, three continuations
            (("a", "c"), tok[:8], tok[11:14]),
            (("a", "d"), tok[:8], tok[14:15]),
            (("e", "f"), tok[:5], tok[15:20]),  # shares a shorter prefix
            (("g", "h"), tok[20:22], tok[22:24]),  # shares nothing
        ]
        try:
            ours = self._packed(reqs, CacheHook(None))
        except Exception as exc:  # an architecture that refuses a 4-D mask or positions
            return f"packed forward failed: {type(exc).__name__}: {exc}"[:300]
        saved, self.cache_hook = self.cache_hook, CacheHook(None)
        try:
            theirs = super()._loglikelihood_tokens(reqs, disable_tqdm=True)
        finally:
            self.cache_hook = saved
        self.cost = Cost()  # the check is not part of any task's cost
        for (a, ga), (b, gb) in zip(ours, theirs, strict=True):
            if abs(a - b) > SELF_CHECK_TOL or ga != gb:
                return f"packed forward differs from the plain one ({a:.6f} vs {b:.6f})"
        return None


def _tree_mask(parents: list[int], length: int) -> np.ndarray:
    """allowed[i, j]: node i attends to node j (an ancestor of i, or i itself). Padding
    attends to itself only, so no softmax row is empty."""
    allowed = np.zeros((length, length), dtype=bool)
    for i, p in enumerate(parents):
        if p >= 0:
            allowed[i] = allowed[p]
        allowed[i, i] = True
    for i in range(len(parents), length):
        allowed[i, i] = True
    return allowed
