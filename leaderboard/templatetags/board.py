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
def percent(fraction):
    """A fraction (0.053) as a percentage with one decimal ("5.3 %"); an en dash when missing."""
    if fraction is None:
        return "–"
    return f"{fraction * 100:.1f} %"
