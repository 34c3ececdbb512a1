"""Refusing, up front, fits that would run for minutes.

Calibrators whose cost grows fast with k (BBQ and isotonic one-vs-rest: k maps; BBQ
also about 10 N^(1/3) binning models per map; matrix scaling: k^2 + k parameters, each
L-BFGS evaluation a (n, k) x (k, k) product) time one small unit of their work on the
actual data, multiply by the number of units, and refuse when the estimate exceeds
``SLOW_FIT_SECONDS``, saying the estimate and a better choice. ``allow_slow=True`` (CLI
``--allow-slow``) runs them anyway.
"""

from __future__ import annotations

import time

from calibrate._core.machine import human_duration
from calibrate._core.validation import InputError

SLOW_FIT_SECONDS = 60.0
SUGGESTION = ("temperature scaling (one parameter, seconds at any k), vector scaling (2k parameters), "
              "or regularised matrix scaling on fewer classes")


class SlowFitError(InputError):
    """The fit would take longer than SLOW_FIT_SECONDS (the message gives the estimate)."""


def timed(fn):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def check(what: str, estimate_s: float, allow_slow: bool, detail: str = "") -> None:
    """Raise SlowFitError when ``estimate_s`` exceeds the budget and ``allow_slow`` is false."""
    if allow_slow or estimate_s <= SLOW_FIT_SECONDS:
        return
    raise SlowFitError(
        f"{what}: the fit would take about {human_duration(estimate_s)} here{f' ({detail})' if detail else ''}; "
        f"refusing to run for minutes unannounced. Use {SUGGESTION}, or pass allow_slow=True "
        "(CLI: --allow-slow) to run it anyway")

