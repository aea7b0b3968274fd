"""The suites and tasks the site knows, created on demand (idempotent)."""

from decimal import Decimal

from .models import MOBILELLM_SUITE, Suite, Task

# (key, lm-eval task, column label, headline metric), in the paper's column order.
CSR_TASKS = [
    ("arc_easy", "arc_easy", "ARC-e", "acc_norm"),
    ("arc_challenge", "arc_challenge", "ARC-c", "acc_norm"),
    ("boolq", "boolq", "BoolQ", "acc"),
    ("piqa", "piqa", "PIQA", "acc_norm"),
    ("siqa", "social_iqa", "SIQA", "acc"),
    ("hellaswag", "hellaswag", "HellaSwag", "acc_norm"),
    ("obqa", "openbookqa", "OBQA", "acc_norm"),
    ("winogrande", "winogrande", "WinoGrande", "acc"),
]
# Column names of the reference CSVs for those tasks.
CSV_COLUMNS = {
    "arc_easy": "arc_easy",
    "arc_challenge": "arc_challenge",
    "boolq": "boolq",
    "piqa": "piqa",
    "siqa": "siqa",
    "hellaswag": "hellaswag",
    "obqa": "openbookqa",
    "winogrande": "winogrande",
}
BNN_SUITE = "bnn-imagenet"


def csr_suite() -> Suite:
    suite, _ = Suite.objects.get_or_create(
        slug=MOBILELLM_SUITE,
        defaults={
            "name": "Zero-shot common-sense reasoning (MobileLLM suite)",
            "description": "ARC-e, ARC-c, BoolQ, PIQA, SIQA, HellaSwag, OBQA, WinoGrande; "
            "accuracy in %, zero-shot, as in the MobileLLM paper's Tables 3 and 8.",
        },
    )
    for position, (key, harness, label, metric) in enumerate(CSR_TASKS):
        Task.objects.get_or_create(
            suite=suite,
            key=key,
            defaults={
                "harness_name": harness,
                "label": label,
                "position": position,
                "headline_metric": metric,
            },
        )
    return suite


def bnn_suite() -> Suite:
    suite, _ = Suite.objects.get_or_create(
        slug=BNN_SUITE,
        defaults={
            "name": "ImageNet, binary neural networks (reported only)",
            "description": "Top-1 / top-5 accuracy (%) of binary networks on ImageNet.",
            "reported_only": True,
        },
    )
    for position, (key, label) in enumerate([("top1", "Top-1"), ("top5", "Top-5")]):
        Task.objects.get_or_create(
            suite=suite,
            key=key,
            defaults={"label": label, "position": position, "headline_metric": key},
        )
    return suite


_UNITS = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


def parse_params(label: str) -> int | None:
    """'125M' -> 125_000_000, '1.1B' -> 1_100_000_000; '' -> None."""
    label = label.strip()
    if not label:
        return None
    unit = label[-1].upper()
    if unit not in _UNITS:
        raise ValueError(f"parameter count {label!r} must end in K, M, B or T")
    return int(Decimal(label[:-1]) * _UNITS[unit])


def format_params(params: int | None) -> str:
    if params is None:
        return ""
    for unit in ("T", "B", "M", "K"):
        if params >= _UNITS[unit]:
            return f"{params / _UNITS[unit]:.3g}{unit}"
    return str(params)
