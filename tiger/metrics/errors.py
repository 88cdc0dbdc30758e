"""The one error type of the metrics: bad input gets a message a researcher can act on.

A `ValueError` subclass so that callers (UI, CLIs) can catch every input problem in one place,
and so that no metric ever returns a silent NaN for input it cannot score.
"""
from __future__ import annotations


class MetricInputError(ValueError):
    """Input a metric cannot score (empty set, mismatched sizes, one-class labels, ...)."""
