"""lm-eval's command line with `hf-trie` registered:

    python -m evaluator.engine run --model hf-trie --model_args pretrained=DIR \
        --tasks hellaswag,arc_easy --batch_size 8

Everything after the program name is lm-eval's own arguments."""

from lm_eval.__main__ import cli_evaluate

import evaluator.engine  # noqa: F401  (registers the model type)

if __name__ == "__main__":
    cli_evaluate()
