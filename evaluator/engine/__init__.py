"""Our lm-eval model type, `hf-trie` (model.py): HFLM's numbers, each shared prefix computed
once. Importing this package registers it with lm-eval's model registry, so that
`lm_eval.simple_evaluate(model="hf-trie", ...)` works; from the shell, `python -m
evaluator.engine` is lm-eval's own command line with the model type registered.

ENGINES maps the site's EVAL_ENGINE setting to the lm-eval model type it runs. Importing
the package also makes lm-eval compile each prompt template once (templates.py): a fixed
cost both engines shed.
"""

from __future__ import annotations

import lm_eval.models  # noqa: F401  (lm-eval's lazy entries first: ours joins them)
from lm_eval.api.registry import model_registry

from evaluator.engine import templates
from evaluator.engine.model import NAME, VERSION, Cost, TrieLM

templates.install()

if NAME not in model_registry:
    model_registry.register(NAME)(TrieLM)

ENGINES = {"fast": NAME, "stock": "hf"}

__all__ = ["ENGINES", "NAME", "VERSION", "Cost", "TrieLM"]
