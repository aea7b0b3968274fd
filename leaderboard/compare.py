"""Is A really better than B? The data behind /compare/ and its CSV and JSON twins.

For 2 to 4 models, each task's score ± stderr and n, and for every other model against the
first: the difference, its 95 % CI and p-value (leaderboard/stats.py does the statistics,
docs/statistics.md says what they assume). Two measured runs on the same data identity are
compared document by document from their per-sample records; anything else (a reported
row) is compared unpaired on binomial standard errors, and labelled so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator import harness
from evaluator.tasks_spec import BY_KEY

from . import stats
from .models import REFERENCE_PRECISION as REFERENCE
from .models import EvaluationRun, TaskScore
from .units import percent, rounded

MAX_MODELS = 4
MAX_DISAGREEMENTS = 200  # per task and pair on the page: HellaSwag pairs disagree ~1,500 times


class CompareError(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse_slugs(query) -> list[str]:
    """?models=a,b or ?models=a&models=b (the leaderboard's checkboxes), order kept."""
    slugs: list[str] = []
    for value in query.getlist("models"):
        for slug in value.split(","):
            if slug.strip() and slug.strip() not in slugs:
                slugs.append(slug.strip())
    if not 2 <= len(slugs) <= MAX_MODELS:
        raise CompareError(f"pass 2 to {MAX_MODELS} model slugs as ?models=a,b (got {len(slugs)})")
    return slugs


def pick_run(slug: str, suite) -> EvaluationRun:
    """The run a model is compared by: its latest measured full-benchmark run, else its
    latest measured run, else its reported row; at the reference precision (variants are
    compared with their reference on the model page)."""
    runs = EvaluationRun.objects.filter(
        entry__slug=slug, suite=suite, status=EvaluationRun.Status.DONE, precision=REFERENCE
    ).select_related("entry")
    order = [
        runs.filter(kind="measured", benchmark="full").order_by("-created"),
        runs.filter(kind="measured").order_by("-created"),
        runs.filter(kind="reported").order_by("created"),
    ]
    for candidates in order:
        run = candidates.first()
        if run is not None:
            return run
    raise CompareError(f"no finished run for the model {slug!r}", status=404)


@dataclass
class Side:
    """One model's run: its scores (fractions) per task key and metric."""

    run: EvaluationRun
    scores: dict[str, dict[str, TaskScore]] = field(default_factory=dict)
    _samples: dict[str, dict[int, dict]] | None = None

    @property
    def slug(self) -> str:
        return self.run.entry.slug

    @property
    def measured(self) -> bool:
        return self.run.kind == EvaluationRun.Kind.MEASURED

    def value(self, key: str, metric: str) -> tuple[float, float, int] | None:
        """(value, stderr, n) as fractions; a reported number gets the binomial stderr on
        the task's full size (the paper prints none)."""
        stored = self.scores.get(key, {})
        score = stored.get(metric)
        if score is None and not self.measured and stored:
            # A reported row keeps the paper's number whatever metric is asked for.
            score = next(iter(stored.values()))
        if score is None:
            return None
        if self.measured and score.stderr is not None and score.n:
            return score.value, score.stderr, score.n
        n = score.n or BY_KEY[key].full_n
        return score.value, stats.binomial_stderr(score.value, n), n

    def data_identity(self, key: str) -> dict | None:
        if not self.measured:
            return None
        return (
            ((self.run.provenance or {}).get("data") or {})
            .get("tasks", {})
            .get(BY_KEY[key].harness)
        )

    def samples(self, key: str) -> dict[int, dict]:
        """This run's per-sample records of one task by doc_id (the file is read once)."""
        if self._samples is None:
            self._samples = {}
            for record in harness.read_samples_jsonl_gz(self.run.samples_file.path):
                by_task = self._samples.setdefault(record.get("task"), {})
                by_task[int(record["doc_id"])] = record
        return self._samples.get(BY_KEY[key].harness, {})


def same_data(a: dict | None, b: dict | None) -> bool:
    """Whether two runs read the same documents: the same file hash, or the same Hub
    dataset at the same revision (or, lacking one, the same datasets fingerprint)."""
    if not a or not b:
        return False
    if a.get("sha256") or b.get("sha256"):
        return a.get("sha256") == b.get("sha256")
    if a.get("split") != b.get("split") or a.get("path") != b.get("path"):
        return False
    if a.get("name") != b.get("name"):
        return False
    for key in ("revision", "fingerprint"):
        if a.get(key) and b.get(key):
            return a[key] == b[key]
    return False


def has_samples(side: Side) -> bool:
    """Whether the run's per-sample file is there to read (a file lost from the media
    folder makes the comparison unpaired, not an error page)."""
    field = side.run.samples_file
    return bool(field) and field.storage.exists(field.name)


def pairable(a: Side, b: Side, key: str) -> bool:
    return (
        a.measured
        and b.measured
        and same_data(a.data_identity(key), b.data_identity(key))
        and has_samples(a)
        and has_samples(b)
    )


def choice_of(record: dict, metric: str) -> int | None:
    """The answer a model picked in one multiple-choice record, as lm-eval scores it:
    the highest log-likelihood (acc) or log-likelihood per character (acc_norm)."""
    choices = continuations(record)
    lls = [r[0] if isinstance(r, list) else r for r in record.get("filtered_resps") or []]
    if not lls or len(lls) != len(choices):
        return None
    if metric == "acc_norm":
        lls = [float(ll) / max(len(c), 1) for ll, c in zip(lls, choices, strict=True)]
    return max(range(len(lls)), key=lambda i: float(lls[i]))


def continuations(record: dict) -> list[str]:
    """The answer strings of a record: arguments as [context, continuation] pairs (ours) or
    as lm-eval's {"gen_args_0": {"arg_0": context, "arg_1": continuation}}."""
    args = record.get("arguments") or []
    if isinstance(args, dict):
        return [str(v.get("arg_1", "")) for _, v in sorted(args.items(), key=_arg_order)]
    return [str(pair[1]) if len(pair) > 1 else "" for pair in args]


def prompt_of(record: dict) -> str:
    args = record.get("arguments") or []
    if isinstance(args, dict):
        first = sorted(args.items(), key=_arg_order)
        return str(first[0][1].get("arg_0", "")) if first else ""
    return str(args[0][0]) if args else ""


def _arg_order(item) -> int:
    return int(item[0].rsplit("_", 1)[-1])


def paired_task(a: Side, b: Side, key: str, metric: str) -> tuple[stats.Diff, list[dict]]:
    """Document by document: the agreement table, McNemar, the bootstrap CI, and the
    documents where the two disagree."""
    left, right = a.samples(key), b.samples(key)
    docs = sorted(set(left) & set(right))
    if not docs:
        raise CompareError(f"no per-sample records in common for {key}")
    outcomes_a = [int(float(left[d][metric])) for d in docs]
    outcomes_b = [int(float(right[d][metric])) for d in docs]
    diff = stats.paired_diff(stats.agreement(outcomes_a, outcomes_b))
    disagreements = []
    for doc, x, y in zip(docs, outcomes_a, outcomes_b, strict=True):
        if x == y:
            continue
        choices = continuations(left[doc])
        pick_a, pick_b = choice_of(left[doc], metric), choice_of(right[doc], metric)
        target = left[doc].get("target")
        disagreements.append(
            {
                "doc_id": doc,
                "prompt": prompt_of(left[doc]),
                "target": choices[int(target)] if _index(target, choices) else target,
                "right": a.slug if x else b.slug,
                "choice_a": choices[pick_a] if pick_a is not None else None,
                "choice_b": choices[pick_b] if pick_b is not None else None,
            }
        )
    return diff, disagreements


def _index(target, choices) -> bool:
    """Whether lm-eval's target is an index into the choices (it is for these tasks)."""
    if isinstance(target, str) and target.isdigit():
        target = int(target)
    return isinstance(target, int) and 0 <= target < len(choices)


def _value_json(triple) -> dict:
    if triple is None:
        return {"value": None, "stderr": None, "n": None}
    value, stderr, n = triple
    return {"value": rounded(percent(value)), "stderr": rounded(percent(stderr)), "n": n}


def diff_json(a: str, b: str, diff: stats.Diff | None) -> dict:
    if diff is None:
        return {"a": a, "b": b, "delta": None, "ci95": None, "p_value": None, "paired": None,
                "n_paired": None, "agreement": None}  # fmt: skip
    return {
        "a": a,
        "b": b,
        "delta": rounded(percent(diff.delta)),
        "ci95": [rounded(percent(x)) for x in diff.ci95] if diff.ci95 else None,
        "p_value": None if diff.p_value is None else float(f"{diff.p_value:.4g}"),
        "paired": diff.paired,
        "n_paired": diff.n_paired,
        "agreement": diff.agreement.as_dict() if diff.agreement else None,
    }


def compare(slugs: list[str], suite, metric: str = "headline") -> dict:
    """The comparison as plain values (percent, percentage points), plus what the page
    alone shows (methods, disagreements) under keys the JSON twin leaves out."""
    sides = [Side(pick_run(slug, suite)) for slug in slugs]
    tasks = list(suite.tasks.all())
    for score in TaskScore.objects.filter(run__in=[s.run for s in sides]).select_related("task"):
        side = next(s for s in sides if s.run.pk == score.run_id)
        side.scores.setdefault(score.task.key, {})[score.metric] = score
    first, rest = sides[0], sides[1:]
    out_tasks, per_pair_diffs = [], {s.slug: [] for s in rest}
    page_extra = []
    for task in tasks:
        task_metric = task.headline_metric if metric == "headline" else metric
        values = {s.slug: s.value(task.key, task_metric) for s in sides}
        diffs, extra = [], []
        for other in rest:
            diff, disagreements = None, None
            if values[first.slug] and values[other.slug]:
                if pairable(first, other, task.key):
                    diff, disagreements = paired_task(first, other, task.key, task_metric)
                else:
                    (va, sa, _), (vb, sb, _) = values[first.slug], values[other.slug]
                    diff = stats.unpaired_diff(va, sa, vb, sb)
                per_pair_diffs[other.slug].append(diff)
            diffs.append(diff_json(first.slug, other.slug, diff))
            extra.append(
                {
                    "b": other.slug,
                    "method": diff.method if diff else "no value to compare",
                    "disagreements": (disagreements or [])[:MAX_DISAGREEMENTS],
                    "n_disagreements": len(disagreements) if disagreements is not None else None,
                }
            )
        out_tasks.append(
            {
                "task": task.key,
                "metric": task_metric,
                "values": {slug: _value_json(v) for slug, v in values.items()},
                "diffs": diffs,
            }
        )
        page_extra.append({"label": task.label, "pairs": extra})
    avg = _average(sides, tasks, metric, per_pair_diffs, first)
    return {
        "models": [_model_json(s) for s in sides],
        "tasks": out_tasks,
        "avg": avg,
        "_page": {"tasks": page_extra},
    }


def _average(sides, tasks, metric, per_pair_diffs, first) -> dict:
    values = {}
    for side in sides:
        triples = [
            side.value(t.key, t.headline_metric if metric == "headline" else metric) for t in tasks
        ]
        if all(triples):
            mean = sum(v for v, _, _ in triples) / len(triples)
            se = stats.mean_stderr([s for _, s, _ in triples])
            values[side.slug] = (mean, se, sum(n for _, _, n in triples))
        else:
            values[side.slug] = None
    diffs = []
    for slug, task_diffs in per_pair_diffs.items():
        whole = len(task_diffs) == len(tasks) and all(d is not None for d in task_diffs)
        diffs.append(diff_json(first.slug, slug, stats.mean_diff(task_diffs) if whole else None))
    return {
        "task": "avg",
        "metric": metric,
        "values": {slug: _value_json(v) for slug, v in values.items()},
        "diffs": diffs,
    }


def _model_json(side: Side) -> dict:
    run = side.run
    return {
        "slug": side.slug,
        "model": run.entry.name,
        "url": f"/models/{side.slug}/",
        "run_id": run.pk,
        "provenance": run.kind,
        "source": run.citation if run.kind == "reported" else run.provenance_label,
        "benchmark": run.benchmark,
        "samples_url": run.samples_file.url if run.samples_file else None,
    }


CSV_HEADER = [
    "task", "metric", "a", "b", "value_a", "stderr_a", "n_a", "value_b", "stderr_b", "n_b",
    "delta", "ci95_low", "ci95_high", "p_value", "paired", "n_paired",
    "both_right", "only_a", "only_b", "both_wrong",
]  # fmt: skip


def csv_rows(data: dict):
    """One row per task (and the average) and pair, from the same data as the page."""
    for item in [*data["tasks"], data["avg"]]:
        for d in item["diffs"]:
            va, vb = item["values"][d["a"]], item["values"][d["b"]]
            agree = d["agreement"] or {}
            ci = d["ci95"] or [None, None]
            yield [
                item["task"], item["metric"], d["a"], d["b"],
                va["value"], va["stderr"], va["n"], vb["value"], vb["stderr"], vb["n"],
                d["delta"], ci[0], ci[1], d["p_value"], d["paired"], d["n_paired"],
                *(agree.get(k) for k in ("both_right", "only_a", "only_b", "both_wrong")),
            ]  # fmt: skip
