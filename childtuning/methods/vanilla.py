"""Vanilla fine-tuning: the loop's default behaviour at every hook."""
from .base import Method, register


@register
class Vanilla(Method):
    name = "vanilla"
