"""Why a precision's evaluation keeps or loses the engine's packed path: per-request
log-likelihood differences of our packed forward, and of stock HFLM at other batch sizes,
against stock HFLM at batch size 1, on one quantized model.

The engine's self-check (evaluator/engine/model.py, tolerance 1e-4: the parity gate's)
decides per model; this shows the distribution behind that decision on more requests:
12 random contexts of 40-89 tokens with 4 continuations of 1-7 tokens each (the shape of a
multiple-choice task), on a random-weight model of the MobileLLM-125M width.

    python bench/engine_rounding.py [--layers 3] [--precisions fp32,int8,int4]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The project root, not bench/: bench/queue.py would shadow the standard library's queue.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from evaluator.tinymodel import MOBILELLM_125M, build_tiny_model  # noqa: E402

TOL = 1e-4


def requests(vocab: int) -> list:
    import torch

    gen = torch.Generator().manual_seed(0)

    def draw(low: int, high: int) -> list[int]:
        n = int(torch.randint(low, high, (1,), generator=gen))
        return torch.randint(1, vocab, (n,), generator=gen).tolist()

    out = []
    for i in range(12):
        context = draw(40, 90)
        out += [((f"c{i}", str(j)), context, draw(1, 8)) for j in range(4)]
    return out


def compare(model_dir: Path, precision: str) -> dict:
    import torch
    from lm_eval.api.model import CacheHook
    from lm_eval.models.huggingface import HFLM

    from evaluator import quant
    from evaluator.engine import TrieLM
    from evaluator.modeling import load_model

    model, tokenizer = load_model(model_dir, device="cpu")
    quant.apply(model, precision)
    reqs = requests(min(500, model.config.vocab_size))
    with torch.inference_mode():
        ours = TrieLM(pretrained=model, tokenizer=tokenizer, batch_size=8)
        got = {"ours (packed)": ours._packed(reqs, CacheHook(None))}
        for bs in (1, 4, 8):
            lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=bs)
            got[f"stock, batch {bs}"] = HFLM._loglikelihood_tokens(lm, reqs, disable_tqdm=True)
    base = got.pop("stock, batch 1")
    out = {}
    for name, values in got.items():
        diffs = [abs(a - b) for (a, _), (b, _) in zip(values, base, strict=True)]
        out[name] = {"max_abs": max(diffs), "over_tol": sum(d > TOL for d in diffs),
                     "n": len(diffs)}  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--precisions", default="fp32,int8,int4")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    spec = dataclasses.replace(MOBILELLM_125M, layers=args.layers)
    with tempfile.TemporaryDirectory(prefix="bench-rounding-") as tmp:
        model_dir = build_tiny_model(Path(tmp) / "model", spec)
        print(f"{'precision':9}  {'against stock, batch 1':24}  {'max |diff|':>10}  > {TOL:g}")
        for precision in args.precisions.split(","):
            for name, r in compare(model_dir, precision).items():
                print(f"{precision:9}  {name:24}  {r['max_abs']:10.2e}  "
                      f"{r['over_tol']} / {r['n']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
