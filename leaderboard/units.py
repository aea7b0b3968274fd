"""Units, converted in one place: scores are stored as lm-eval gives them (fractions) and
shown, exported and served in percent; parameter counts are stored as integers and shown
as the paper writes them ("125M")."""

from __future__ import annotations

from decimal import Decimal

_UNITS = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


def percent(value: float | None) -> float | None:
    """A stored fraction (an accuracy, its standard error) in percent."""
    return None if value is None else value * 100


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


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
