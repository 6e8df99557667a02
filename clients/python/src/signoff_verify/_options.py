"""Checking the options given in seconds, once, when a verifier or a receiver is made.

Every check of a token compares a time with one of them, and a NaN compares false with
everything: a NaN ``leeway`` would accept expired tokens, a NaN ``retain`` would forget each
revocation as soon as it is heard, an infinite ``stale_after`` would never fail closed.
"""

from __future__ import annotations

import math


def seconds(name: str, value: object, *, positive: bool = False, at_most: float = math.inf) -> float:
    """``value`` as a float, or a ``ValueError`` naming ``name``: a finite number (not a bool),
    0 or more (above 0 if ``positive``), at most ``at_most``."""
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
        or value > at_most
    ):
        least = "above 0" if positive else "0 or more"
        most = f" and at most {at_most:g}" if math.isfinite(at_most) else ""
        raise ValueError(f"{name} must be a finite number of seconds, {least}{most}; not {value!r}")
    return float(value)
