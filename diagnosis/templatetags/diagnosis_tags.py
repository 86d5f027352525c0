from __future__ import annotations

from django import template

from .. import selectors
from ..models import Prediction

register = template.Library()


@register.filter
def uncertainty(prediction: Prediction | None) -> selectors.Uncertainty | None:
    """The needs-review verdict of a prediction: ``{% with verdict=prediction|uncertainty %}``."""
    return selectors.prediction_uncertainty(prediction) if prediction else None


@register.filter
def percent(value: float | None) -> str:
    return "–" if value is None else f"{float(value) * 100:.0f}%"


@register.filter
def fine_percent(value: float | None) -> str:
    """A percentage to one decimal: the small rates (0.5%) that whole percentages round away."""
    return "–" if value is None else f"{float(value) * 100:.1f}%"


@register.filter
def get_item(mapping: dict | None, key: str) -> object:
    """``mapping[key]`` in a template, or None: ``{{ intervals|get_item:name }}``."""
    return (mapping or {}).get(key)
