from django import template

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
