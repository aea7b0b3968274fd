"""What a submission's page says about it: the stage it is at, in words, and once finished
its scores and latency (so that the submitter need not open the model page to see them)."""

from __future__ import annotations

from .models import REFERENCE_PRECISION, LatencyResult, Submission, TaskScore
from .spread import decode_spread
from .units import percent, rounded

S = Submission.Status


def stage(sub: Submission) -> str:
    """One line on where the submission is; it only ever moves forward."""
    count = sub.task_count or 1
    task = f"task {sub.task_index + 1} of {count}"
    if sub.task_name:
        task += f" ({sub.task_name})"
    if sub.status == S.PENDING:
        return "waiting for a worker"
    if sub.status == S.FETCHING:
        if sub.task_fraction:
            return f"downloading the checkpoint: {sub.task_fraction:.0%}"
        return "downloading the checkpoint"
    if sub.status == S.EVALUATING:
        if sub.task_index == 0 and not sub.task_name:
            return "loading the model"
        return f"{task}: {sub.task_fraction:.0%} of its questions"
    if sub.status == S.PROBING:
        pending = ", ".join(sub.probes_pending)
        return f"scores stored; measuring latency on {pending}" if pending else "scores stored"
    if sub.status == S.DONE:
        return "finished"
    if sub.entry_id is None:
        return f"{sub.status} before the evaluation began"
    return f"{sub.status} during {task}"


def outcome(sub: Submission) -> dict | None:
    """The finished evaluation's average and headline score per task (percent), and the
    latency measured for its model per device profile; None until scores are stored."""
    if sub.run_id is None:
        return None
    scores = (
        TaskScore.objects.filter(run_id=sub.run_id)
        .select_related("task")
        .order_by("task__position")
    )
    latency = LatencyResult.objects.filter(
        entry_id=sub.run.entry_id, precision=REFERENCE_PRECISION
    ).select_related("profile")
    return {
        "avg": rounded(percent(sub.run.avg), 2),
        "benchmark": sub.run.benchmark,
        "scores": [
            {
                "task": s.task.key,
                "label": s.task.label,
                "metric": s.metric,
                "value": rounded(percent(s.value), 2),
                "stderr": rounded(percent(s.stderr), 2),
                "n": s.n,
            }
            for s in scores
            if s.metric == s.task.headline_metric
        ],
        "latency": [
            {
                "profile": r.profile.slug,
                "profile_name": r.profile.name,
                "provenance": r.kind,
                "execute_ms": r.execute_ms,
                "decode_tok_s": r.decode_tok_s,
                "peak_rss_mb": r.peak_rss_mb,
                "spread": decode_spread(r.samples),
            }
            for r in latency
        ],
    }
