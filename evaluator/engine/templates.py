"""lm-eval's prompt templates, compiled once instead of once per document field.

lm-eval 0.4.13 renders every `doc_to_text` / `doc_to_target` / `doc_to_choice` template with
`jinja2.Environment.from_string(template).render(**doc)`, and `from_string` compiles the
template anew each call (Jinja caches only templates loaded by name). That is 4-5 compiles a
document: measured 1.8 s against 1.1 s of CPU for the sample set's 320 documents, so about
50 s of the full eight-task benchmark's 22,400, the same for either engine
(bench/README.md). The compiled
template is a pure function of its source in lm-eval's one environment, so caching it by
source changes no prompt; `tests/test_parity.py` and `tests/test_engine.py` compare prompts'
answers with stock lm-eval, and a test compares rendered prompts with and without the cache.
"""

from __future__ import annotations

import functools

from lm_eval import utils as lm_utils

_stock_apply_template = lm_utils.apply_template


@functools.lru_cache(maxsize=1024)
def _compiled(template: str):
    return lm_utils.env.from_string(template)


def apply_template(template: str, doc: dict) -> str:
    return _compiled(template).render(**doc)


def install() -> None:
    """Route lm-eval's template rendering through the cache (callers look it up on the
    module at each call, so replacing the module attribute is enough)."""
    lm_utils.apply_template = apply_template
