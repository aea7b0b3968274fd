"""Pack log-likelihood requests into token tries: every shared token prefix once.

A request is scored on its model input `inp = (context + continuation)[-(max_len+1):][:-1]`
(lm-eval's HFLM rule, left truncation included): the logits at the last `len(cont)` positions
of `inp` predict the continuation. Requests whose inputs share a token prefix (the answer
choices of one question, WinoGrande's two options up to the blank, BoolQ's yes/no) share
those positions exactly: a causal model's output at a position depends only on the tokens up
to it. So the inputs are laid out as a trie, each trie node one token at position = its depth,
attending to its ancestors only (a tree-shaped causal mask). The model computes each distinct
prefix once, and the log-softmax is taken only at the nodes some request scores.

Torch-free: plain lists in, plain lists out, so the layout is testable on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Row:
    """One packed sequence: trie nodes in depth-first order (a parent precedes its child)."""

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)  # -1 for a root
    positions: list[int] = field(default_factory=list)  # depth: the token's position id
    # (request index, node indices scored, target tokens) per request packed here
    scored: list[tuple[int, list[int], list[int]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def unique_trie_tokens(inputs: Sequence[Sequence[int]]) -> int:
    """Distinct prefixes over all inputs: the tokens a perfect prefix-sharing engine forwards.
    In sorted order a sequence shares most with its predecessor."""
    total, prev = 0, ()
    for seq in sorted(tuple(s) for s in inputs):
        total += len(seq) - common_prefix(prev, seq)
        prev = seq
    return total


def model_input(context: Sequence[int], continuation: Sequence[int], max_length: int) -> list:
    """HFLM's input for a causal request: left-truncated to max_length, last token dropped."""
    return list((list(context) + list(continuation))[-(max_length + 1) :][:-1])


def pack(
    requests: Sequence[tuple[Sequence[int], Sequence[int]]], max_length: int, row_tokens: int
) -> list[Row]:
    """Rows of at most max(row_tokens, longest input) tokens holding every request.

    Requests are taken in lexicographic order of their inputs, so that each one's shared
    prefix is the path of its predecessor; rows are cut where the fewest shared tokens must
    be forwarded again (row_starts)."""
    inputs = [model_input(ctx, cont, max_length) for ctx, cont in requests]
    order = sorted(range(len(requests)), key=lambda i: inputs[i])
    ordered = [inputs[i] for i in order]
    shared = [0] + [common_prefix(a, b) for a, b in zip(ordered, ordered[1:], strict=False)]
    starts = set(row_starts(ordered, shared, row_tokens))
    rows: list[Row] = []
    path: list[int] = []  # node indices of the previous request's input in the current row
    for k, i in enumerate(order):
        inp, cont = ordered[k], list(requests[i][1])
        keep = shared[k]
        if k in starts:
            rows.append(Row())
            keep, path = 0, []
        row = rows[-1]
        path = path[:keep]
        for depth in range(keep, len(inp)):
            row.parents.append(path[-1] if path else -1)
            row.positions.append(depth)
            row.tokens.append(inp[depth])
            path.append(len(row.tokens) - 1)
        # Scored: the last len(cont) positions of inp (HFLM's logits[inplen - contlen:inplen]).
        row.scored.append((i, path[len(inp) - len(cont) :], cont))
    return rows


# A row is cut early, at the request sharing least with its predecessor, only once it is at
# least this full: a little space left empty costs less than a long context forwarded twice.
MIN_FILL = 0.5


def row_starts(inputs: list[list[int]], shared: list[int], row_tokens: int) -> list[int]:
    """Where rows begin (indices into the sorted inputs). A request joins the current row
    while its new tokens fit; when one does not, the row is cut at the candidate whose
    prefix shared with its predecessor is shortest (that prefix is forwarded again)."""
    if not inputs:
        return []
    starts, start = [0], 0
    for i in range(1, len(inputs)):
        if _row_size(inputs, shared, start, i) <= max(row_tokens, len(inputs[i])):
            continue
        best, fill = i, len(inputs[start])
        for k in range(start + 1, i):
            fill += len(inputs[k]) - shared[k]
            if fill >= MIN_FILL * row_tokens and shared[k + 1] < shared[best]:
                best = k + 1
        starts.append(best)
        start = best
    return starts


def _row_size(inputs: list[list[int]], shared: list[int], start: int, end: int) -> int:
    """Tokens of a row holding the sorted inputs start..end inclusive."""
    return len(inputs[start]) + sum(len(inputs[k]) - shared[k] for k in range(start + 1, end + 1))


def batches(rows: list[Row], max_tokens: int) -> list[list[Row]]:
    """Rows grouped into forwards of at most max_tokens padded tokens (rows of similar
    length together, longest first so that a memory problem shows at once)."""
    out: list[list[Row]] = []
    for row in sorted(rows, key=len, reverse=True):
        if out and len(out[-1][0]) * (len(out[-1]) + 1) <= max_tokens:
            out[-1].append(row)
        else:
            out.append([row])
    return out
