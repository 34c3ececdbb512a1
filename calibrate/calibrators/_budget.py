"""Long fits, decided from the sizes alone: the size rule, its warning and progress bar.

Calibrators whose cost grows fast with n and k have a size rule: a count of work units
from (method, n, k) and a fixed nominal cost per unit (``NS_PER_UNIT``, a typical
x86-64 core), so the same sizes always give the same estimate, whatever the machine's
load. Units:

- isotonic: m one-vs-rest maps x n log2 n (each map sorts and pools n values);
- bbq: m maps x M binning models x n log2 n (each model sorts n values;
  M = ceil(c n^(1/3)) - floor(n^(1/3) / c) + 1, c = 10);
- matrix: 100 L-BFGS evaluations (a typical count, a lower estimate) x n k^2 (each
  evaluation two (n, k) x (k, k) products);
- dirichlet: F fits on n rows x n k^2 for k > 24 (L-BFGS: each evaluation two (n, k) x
  (k, k) products), x n (k (k + 1))^2 for k <= 24 (Newton: each step an exact Hessian,
  an (n, k (k + 1)) product with itself); F = G (cv - 1) + 1: each of the G penalty grid
  points is fitted on the cv - 1 training folds of each of the cv folds (cv - 1 times
  the n rows in all), then once on all n rows (by default G = 192, cv = 5: F = 769;
  with fixed penalties G = 0: F = 1). The typical number of evaluations or steps per fit
  is inside the cost per unit (``dirichlet``, ``dirichlet-newton``);

with m = 1 for k = 2, else k. A fit is long when its estimate exceeds
``LONG_FIT_SECONDS``. The Python API never refuses a long fit: it warns
(:class:`LongFitWarning`, with the estimate) and shows a progress bar on stderr. The
command line refuses one up front unless given ``--allow-slow`` (``calibrate.cli``).
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass

from calibrate._core.machine import human_duration
from calibrate._core.validation import InputError

LONG_FIT_SECONDS = 60.0
# dirichlet, dirichlet-newton: CPU ns per unit of DirichletCalibration fits (warm-started
# along the penalty grid) on one core with single-threaded BLAS, simulated logits. L-BFGS:
# 1,900-2,000 at k = 50 (n = 300, 1,000), 3,500 at k = 100 (n = 300); the k = 100 figure,
# a lower estimate beyond (the evaluations per fit grow with k). Newton: 0.47 for the
# default fit on 5,000 x 10 (22 s), 1.5 on 2,000 x 10 with 6 penalties and 2 folds.
NS_PER_UNIT = {"isotonic": 30.0, "bbq": 10.0, "matrix": 1.0, "dirichlet": 3500.0, "dirichlet-newton": 0.5}
MATRIX_EVALS = 100
DIRICHLET_GRID = 24 * 8  # DirichletCalibration's default lambdas x mus
DIRICHLET_CV = 5  # and its default folds
DIRICHLET_NEWTON_PARAMS = 650  # dirichlet.NEWTON_MAX_PARAMS: Newton's method up to k (k + 1) parameters
SUGGESTION = ("temperature scaling (one parameter, seconds at any k), vector scaling (2k parameters), "
              "or regularised matrix scaling on fewer classes")


class LongFitWarning(UserWarning):
    """A fit that is long by the size rule is running (the message gives the estimate)."""


def bbq_model_range(n: int, c: float = 10.0) -> tuple[int, int]:
    """(fewest, most) bins of BBQ's models on n rows: floor(n^(1/3) / c), ceil(c n^(1/3)), within [1, n]."""
    root = n ** (1.0 / 3.0)
    return max(1, int(math.floor(root / c))), min(n, int(math.ceil(c * root)))


@dataclass(frozen=True)
class FitSize:
    """A fit's size by the size rule: ``units`` of work, described by ``rule``."""

    method: str
    n: int
    k: int
    units: float
    rule: str
    unit: str = ""  # the NS_PER_UNIT key when not the method's own

    @property
    def ns_per_unit(self) -> float:
        return NS_PER_UNIT[self.unit or self.method]

    @property
    def seconds(self) -> float:
        """The nominal duration: units x NS_PER_UNIT[unit or method]."""
        return self.units * self.ns_per_unit * 1e-9

    @property
    def long(self) -> bool:
        return self.seconds > LONG_FIT_SECONDS

    def describe(self) -> str:
        """One line: the rule, the units, the estimate and the limit."""
        text = (f"{self.rule} = {self.units:.3g} units at {self.ns_per_unit:g} ns each = about "
                f"{human_duration(self.seconds)} on a typical core")
        return text + (f", over the {LONG_FIT_SECONDS:.0f} s of a long fit" if self.long else "")


def fit_size(method: str, n: int, k: int, c: float = 10.0, *, grid: int = DIRICHLET_GRID,
             cv: int = DIRICHLET_CV) -> FitSize | None:
    """The size of fitting ``method`` on n rows of k classes; None for a method without a
    size rule (its fits take seconds at any size). c: BBQ's model-range constant; grid, cv:
    Dirichlet's penalty grid points (0: fixed penalties) and cross-validation folds."""
    if method not in NS_PER_UNIT or method == "dirichlet-newton":
        return None
    n, k = int(n), int(k)
    m = 1 if k == 2 else k
    sort = n * math.log2(max(n, 2))
    if method == "isotonic":
        return FitSize(method, n, k, m * sort, f"{m} one-vs-rest maps x n log2 n")
    if method == "bbq":
        lo, hi = bbq_model_range(n, c)
        models = hi - lo + 1
        return FitSize(method, n, k, m * models * sort, f"{m} one-vs-rest maps x {models} binning models x n log2 n")
    if method == "dirichlet":
        fits = int(grid) * (int(cv) - 1) + 1
        what = f"{fits} fits ({int(grid)} penalties x {int(cv)} folds, then one)" if grid else "1 fit (fixed penalties)"
        if k * (k + 1) <= DIRICHLET_NEWTON_PARAMS:
            return FitSize(method, n, k, float(fits) * n * float(k * (k + 1)) ** 2,
                           f"{what} x n (k (k + 1))^2 (Newton)", unit="dirichlet-newton")
        return FitSize(method, n, k, float(fits) * n * k * k, f"{what} x n k^2 (L-BFGS)")
    return FitSize(method, n, k, float(MATRIX_EVALS) * n * k * k, f"{MATRIX_EVALS} L-BFGS evaluations x n k^2")


def announce(who: str, size: FitSize | None, stacklevel: int = 4) -> bool:
    """Warn (LongFitWarning) when ``size`` is long; True when it is (a progress bar is then due)."""
    if size is None or not size.long:
        return False
    warnings.warn(f"{who} on {size.n:,} x {size.k}: a long fit by the size rule ({size.describe()}); "
                  f"it runs, with a progress bar on stderr. Faster: {SUGGESTION}", LongFitWarning,
                  stacklevel=stacklevel)
    return True


def progress(show: bool, total: int | None, desc: str, unit: str):
    """A tqdm bar on stderr when ``show``, else an object whose update/close do nothing."""
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=1.0, dynamic_ncols=True)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def deprecated_allow_slow(cal) -> None:
    """DeprecationWarning when ``allow_slow`` was given (it has no effect; removed in the next release)."""
    if getattr(cal, "allow_slow", None) is not None:
        warnings.warn(f"{type(cal).__name__}(allow_slow=...) is deprecated and has no effect: fits are never "
                      "refused for their size (a long one warns with its estimate); it will be removed in the "
                      "next release", DeprecationWarning, stacklevel=4)


def refuse_long_fit(method: str, n: int, k: int, allow_slow: bool) -> None:
    """Refuse, before fitting, a fit that is long by the size rule
    (from method, n and k only), unless allow_slow."""
    size = fit_size(method, n, k)
    if allow_slow or size is None or not size.long:
        return
    raise InputError(f"--method {method} on {n:,} x {k}: a long fit by the size rule ({size.describe()}); "
                     f"use {SUGGESTION}, or pass --allow-slow to run it anyway")
