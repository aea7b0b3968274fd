from html import escape

from django import template
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def pct(value, digits=1):
    """A percentage as the paper prints it (one decimal); an en dash when missing."""
    if value is None:
        return "–"
    return f"{value:.{int(digits)}f}"


@register.filter
def ms(value):
    if value is None:
        return "–"
    return f"{value:,.1f}"


@register.filter
def signed(value, digits=2):
    """A difference in percentage points with its sign (+1.25, −0.40)."""
    if value is None:
        return "–"
    return f"{value:+.{int(digits)}f}".replace("-", "−")


@register.filter
def pval(value):
    """A p-value to three significant digits; below 0.0001 as "<0.0001" (the JSON keeps it)."""
    if value is None:
        return "–"
    return "<0.0001" if value < 1e-4 else f"{value:.3g}"


@register.filter
def percent(fraction):
    """A fraction (0.053) as a percentage with one decimal ("5.3 %"); an en dash when missing."""
    if fraction is None:
        return "–"
    return f"{fraction * 100:.1f} %"


@register.simple_tag
def score_cell(cell, title):
    """A score's <td>: value, stderr, and a tooltip saying where it comes from. Built here,
    not in a partial: `/` shows about 1,000 of them, and an {% include %} (then format_html)
    per cell was most of the page's time (measured at 100 rows). Only the tooltip holds
    text from outside; the rest are numbers we format."""
    classes = f"num {cell.mark}" if cell.mark else "num"
    if cell.value is None:
        return mark_safe(f'<td class="{classes}">–</td>')
    tip = str(title)
    if cell.stderr is not None:
        tip += f" ± {pct(cell.stderr, 2)}"
    if cell.n:
        tip += f", n={cell.n}"
    if cell.metric:
        tip += f", {cell.metric}"
    if cell.mark:
        tip += f" — {cell.mark} in its class"
    err = "" if cell.stderr is None else f'<small class="err">±{pct(cell.stderr)}</small>'
    return mark_safe(f'<td class="{classes}" title="{escape(tip)}">{pct(cell.value)}{err}</td>')  # noqa: S308
