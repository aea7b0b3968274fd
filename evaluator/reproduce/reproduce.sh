#!/usr/bin/env bash
# Re-run this bundle's evaluation with STOCK lm-eval (python -m lm_eval --model hf) and
# compare its numbers with results.json: prints OK, or the differences and exits 1.
#
#   ./reproduce.sh                 the checkpoint from its pinned source (see environment.json)
#   ./reproduce.sh /path/to/model  a local copy of the checkpoint (a Hugging Face directory)
#
# Needs python with lm-eval (the version in environment.json; another one is reported).
# Override with env: PYTHON, DEVICE (default cpu), BATCH_SIZE, TOLERANCE (default 1e-4),
# OUTPUT_DIR (keep lm-eval's output and log there).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python}"
# Filled in when the bundle was made, from the run's provenance:
PINNED_MODEL_ARGS=@PINNED_MODEL_ARGS@
DTYPE=@DTYPE@
TASKS=@TASKS@
DEVICE="${DEVICE:-cpu}"
BATCH_SIZE="${BATCH_SIZE:-@BATCH_SIZE@}"

if [ $# -ge 1 ]; then
  MODEL_ARGS="pretrained=$1"
elif [ -n "$PINNED_MODEL_ARGS" ]; then
  MODEL_ARGS="$PINNED_MODEL_ARGS"
else
  echo "this checkpoint has no pinned Hub source: pass its directory, ./reproduce.sh DIR" >&2
  exit 2
fi
if [ -n "${OUTPUT_DIR:-}" ]; then  # keep lm-eval's output there (else a temporary dir)
  WORK="$OUTPUT_DIR"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
fi
# The bundle's task yamls, their `include` pointed at this lm-eval's stock files (whose
# hashes are checked against the ones the run used) and their data at the bundle's files.
"$PYTHON" "$HERE/check_results.py" prepare "$HERE" "$WORK/tasks"
"$PYTHON" -m lm_eval --model hf --model_args "$MODEL_ARGS,dtype=$DTYPE" \
  --tasks "$TASKS" --include_path "$WORK/tasks" --num_fewshot 0 \
  --device "$DEVICE" --batch_size "$BATCH_SIZE" --seed 0,1234,1234,1234 @LIMIT_ARGS@ \
  --output_path "$WORK/out" --log_samples > "$WORK/lm_eval.log" 2>&1 || {
  tail -n 40 "$WORK/lm_eval.log" >&2
  exit 1
}
"$PYTHON" "$HERE/check_results.py" compare "$HERE/results.json" "$WORK/out"
