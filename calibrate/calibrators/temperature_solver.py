"""The temperature family's solvers: the single temperature T > 0 of softmax(z / T) that
minimises a loss on validation logits z (n, k) and labels y (n,).

NLL: :func:`fit_temperature_nll` (safeguarded Halley/Newton on a = 1/T over passes of
:func:`nll_derivative_sums`); ECE: :func:`_fit_temperature_ece`; Brier score and a
bounded NLL search: :func:`fit_temperature_brier`, :func:`_fit_temperature_search`.
Used by TemperatureScaling, the affine scalings' start and EnsembleTemperatureScaling.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.optimize import minimize_scalar

from calibrate._core.blocks import BLOCK_BYTES, block_rows, one_blas_thread, row_max
from calibrate._core.validation import InputError, check_gold_finite
from calibrate.calibrators.base import log_softmax64

# the derivative pass holds three float64 working copies of a block: half the package's
# block each, so the three stay in a core's L2 cache (1 MiB or more) between operations
_PASS_BYTES = BLOCK_BYTES // 2
_EXP_FLOOR = -700.0


def nll_derivative_sums(z, y, a: float, also_at: float | None = None, *, dtype=np.float64,
                        with_mean: bool = True, record=None) -> np.ndarray:
    """One pass over (n, k) logits: the row sums that give the NLL of softmax(a z) and
    its first five derivatives in a = 1/T.

    Per row, with zs = z - max_j z and p = softmax(a zs): f = log sum_j exp(a zs_j) -
    a zs_y; f' = E_p[zs] - zs_y; f'' = Var_p(zs) >= 0 (so the NLL is convex in a);
    f''' = E_p[(zs - E_p zs)^3]. The moments come from the raw sums sum_j e_j zs_j^r
    (e_j = exp(a zs_j)): the top logit has zs = 0 and p >= 1/k there, so Var_p(zs) >=
    E_p[zs]^2 / k and f'' loses at most log10(k) digits to cancellation; f' (which alone
    fixes the optimum) has none. Rows are read in blocks and converted to ``dtype`` one
    block at a time (z may be float32 or memory-mapped; it is never copied whole), with
    BLAS on one thread (see calibrate._core.blocks.one_blas_thread); the exponential is
    numpy's. dtype float32 is for a starting point only (the fit's
    own passes are float64).
    Returns float64 [rows, sum f, sum f', sum f'', sum f''', sum (mean_j zs_j - zs_y)
    (0 unless with_mean), rows whose label is not a top logit, sum f at a = also_at (0
    when None), sum f'''', sum f''''']: f at also_at lets the first pass of a fit also give
    the NLL at T = 1 for one more exp per value; f'''' and f''''' (the 4th and 5th
    cumulants of zs under p) let it stop after one pass when it starts close enough.
    record: None, or an object whose ``add(start, zs, axis, zy, a, lse, also_at, lse_also,
    moments, raw, zmin, absent)`` receives each block's per-row values: moments = (m,) arrays
    E_p[zs] and the central moments 2..5 of zs under p, raw = the raw moments E_p[zs^r],
    r = 2..4, zmin the block's smallest zs, absent its -inf mask or None (zs is 0 there)
    (calibrate.calibrators.fit_summary.TemperatureFitRecord).
    A -inf logit (an absent option) has p = 0 at every a: it adds nothing to any sum, and
    the mean of zs is over the row's present options (labels' logits must be finite).
    """
    with one_blas_thread():
        return _nll_derivative_sums(z, y, a, also_at, np.dtype(dtype), with_mean, record)


def _nll_derivative_sums(z, y, a, also_at, dtype, with_mean, record=None):
    """The pass itself (see nll_derivative_sums)."""
    n, k = z.shape
    out = np.zeros(10)
    rows = block_rows(k, 8, _PASS_BYTES)
    # Short rows (k <= 64) are worked on transposed, (k, m): the maxima and sums over a
    # row become k - 1 vector operations over m values, 2x faster than numpy's (or
    # BLAS's) short-axis reductions; long rows stay (m, k) and are summed along the row.
    by_column = k <= 64
    axis = 0 if by_column else 1

    def rowsum(x):  # float64 sums per row (the float32 start pass sums in float32, then converts)
        return x.sum(axis=axis).astype(np.float64, copy=False)

    bufs = None
    # exp(-700) = 1e-304 (float32: exp(-87) = 1.6e-38) instead of a subnormal (subnormal
    # arithmetic is ~100x slower): a zs is clamped there when any value of the block is
    # below; against the row's own exp(0) = 1 the change is below 1e-299 (1e-34)
    floor = _EXP_FLOOR if dtype == np.float64 else -87.0
    for start in range(0, n, rows):
        zb = z[start:start + rows]
        m = zb.shape[0]
        if bufs is None or bufs[0].size != m * k:  # the first block, and a shorter last one
            bufs = [np.empty((k, m) if by_column else (m, k), dtype) for _ in range(3)]
        zs, e, t = bufs
        yb, ar = y[start:start + m], np.arange(m)
        if by_column:
            np.copyto(zs, zb.T, casting="unsafe")
            zs -= zs.max(axis=0)
            zy = zs[yb, ar].astype(np.float64)
        else:
            np.subtract(zb, row_max(zb)[:, None], out=zs, dtype=dtype)
            zy = zs[ar, yb].astype(np.float64)
        zmin = float(zs.min())  # the products b zs below the floor are clamped (rare: gaps beyond 700 / b)
        absent = None
        if zmin == -math.inf:  # absent options (-inf logits): zs 0 and e 0 there, so every sum skips them
            if np.isneginf(zy).any():
                check_gold_finite(z[start:start + m], yb)  # raises, naming the rows (of this chunk)
            absent = np.isneginf(zs)
            zs[absent] = 0.0
            zmin = float(zs.min())
        if with_mean:
            mean_gap = float(rowsum(zs).sum() / k if absent is None
                             else (rowsum(zs) / (k - rowsum(absent))).sum()) - float(zy.sum())
        else:
            mean_gap = 0.0
        if also_at is not None:
            if also_at == 1.0 and zmin >= floor:
                np.exp(zs, out=e)
            else:
                _floored(np.multiply(zs, also_at, out=e), also_at * zmin, floor)
                np.exp(e, out=e)
            if absent is not None:
                e[absent] = 0.0
            lse_also = np.log(rowsum(e))
            f_also = lse_also.sum() - also_at * zy.sum()
        else:
            f_also, lse_also = 0.0, None
        _floored(np.multiply(zs, a, out=e), a * zmin, floor)
        np.exp(e, out=e)
        if absent is not None:
            e[absent] = 0.0
        s0 = rowsum(e)
        m1 = rowsum(np.multiply(e, zs, out=t)) / s0
        r2 = rowsum(np.multiply(t, zs, out=t)) / s0
        r3 = rowsum(np.multiply(t, zs, out=t)) / s0
        r4 = rowsum(np.multiply(t, zs, out=t)) / s0
        r5 = rowsum(np.multiply(t, zs, out=t)) / s0
        # central moments from the raw ones, then the cumulants k4 = mu4 - 3 mu2^2, k5 = mu5 - 10 mu3 mu2
        mm = m1 * m1
        mu2 = np.maximum(r2 - mm, 0.0)
        mu3 = r3 - m1 * (3.0 * r2 - 2.0 * mm)
        mu4 = r4 - m1 * (4.0 * r3 - 6.0 * m1 * r2 + 3.0 * mm * m1)
        mu5 = r5 - m1 * (5.0 * r4 - 10.0 * m1 * r3 + 10.0 * mm * r2 - 4.0 * mm * mm)
        k4, k5 = mu4 - 3.0 * mu2 * mu2, mu5 - 10.0 * mu3 * mu2
        if record is not None:
            record.add(start, zs, axis, zy, a, np.log(s0), also_at, lse_also,
                       moments=(m1, mu2, mu3, mu4, mu5), raw=(r2, r3, r4), zmin=zmin, absent=absent)
        out += (m, np.log(s0).sum() - a * zy.sum(), (m1 - zy).sum(), mu2.sum(), mu3.sum(), mean_gap,
                np.count_nonzero(zy < 0), f_also, k4.sum(), k5.sum())
    return out


class TemperatureFitError(InputError):
    """No finite temperature minimises the NLL of these logits (the message says why)."""


def fit_temperature_nll(z, y, bounds=None, max_iter: int = 100, start: float | None = None,
                        tol: float = 1e-7, sums=nll_derivative_sums, want_nll_at_1: bool = True,
                        record=None):
    """The temperature T > 0 that minimises the NLL of softmax(z / T), and its diagnostics.

    z: (n, k) float logits (float32, float64 or memory-mapped; read in row blocks),
    y: (n,) int labels. ``sums(z, y, a)`` is the pass (replaceable: the dask version
    runs it on a cluster).
    Safeguarded Halley/Newton on a = 1/T, on which the NLL is convex: each pass over the
    data (:func:`nll_derivative_sums`) gives the NLL and its first three derivatives. A
    step that leaves the known bracket moves by at most a factor 10 toward the untested
    side (so the bracket widens geometrically) or bisects. When the step is below
    ``tol`` (relative; 0.1 sqrt(tol) for a Halley step) it is taken without another
    pass: the error after it is of order tol^2, and the NLL and gradient reported at the final T
    are the Taylor values from that last pass. On large inputs the iteration starts
    from the optimum on an evenly strided eighth of the rows (float32 passes), so 1 or 2
    full passes do: a pass also gives the 4th and 5th derivatives, and when the start is
    close, the root of that 5-term Taylor model of f' is taken without another pass
    provided its terms shrink fast enough that the next one would move it by less than
    tol / 10^4 (relative; see _taylor_root).

    bounds: None (default) searches all of (0, inf) and refuses, with the reason, when no
    finite optimum exists: every label is a top logit (the NLL falls as T -> 0), or the
    labels' logits are on average no higher than the mean logit (the optimum is T -> inf).
    (low, high): the search is confined there and stops at a bound (at_bound).
    record: None, or a calibrate.calibrators.fit_summary.TemperatureFitRecord that keeps the
    per-row values of the full passes (numpy passes only) and, finished at the fitted T,
    gives the NLL and top-label confidences at T = 1 and at T without another full pass
    (when the fit ended with a Taylor step, from the last pass's per-row cumulants).
    Returns (T, info), info = dict(nll, nll_at_1 (from the first pass), grad_log_t,
    n_iter (passes over all rows), at_bound).
    """
    if start is None and z.shape[0] >= 512:
        start = _subsample_start(z, y, bounds, max_iter, sums)
    if record is not None:
        if sums is not nll_derivative_sums:
            raise ValueError("record: only the numpy pass (sums=nll_derivative_sums) records per-row values")
        sums = functools.partial(nll_derivative_sums, record=record)
    br = _Bracket(bounds)
    a = br.clamp(1.0 if start is None else 1.0 / start)
    at_bound = False
    nll_at_1 = None
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported after the loop)
        also_at = 1.0 if it == 1 and a != 1.0 and want_nll_at_1 else None
        tot = np.asarray(sums(z, y, a, also_at, with_mean=it == 1), dtype=np.float64)
        f, g, h, t3, t4, t5 = tot[[1, 2, 3, 4, 8, 9]] / tot[0]
        if a == 1.0:
            nll_at_1 = f
        elif it == 1 and want_nll_at_1:
            nll_at_1 = tot[7] / tot[0]
        if it == 1 and bounds is None:
            _check_finite_optimum(tot)
        if not br.update(a, g):
            break
        if br.at_bound(a, g):
            at_bound = True
            break
        step, halley = _halley_step(g, h, t3)
        cand = br.next_point(a, step)
        inside = br.lo < cand < br.hi
        last = _last_step(br, a, cand, step, halley, tol, (f, g, h, t3, t4, t5)) if inside else None
        if last is not None:
            a, f, g = last
            break
        if br.collapsed():
            break
        a = cand if inside else br.outside(a, cand)
    else:
        raise RuntimeError(
            f"temperature fit: Newton did not converge in {max_iter} iterations (last T={1 / a:.6g})"
        )
    info = {"nll": float(f), "nll_at_1": None if nll_at_1 is None else float(nll_at_1),
            "grad_log_t": float(-a * g), "n_iter": it, "at_bound": at_bound}
    if record is not None:
        record.finish(z, y, a)
    return 1.0 / a, info


def _subsample_start(z, y, bounds, max_iter, sums):
    """A starting T from every 8th row (>= 64 rows; itself started the same way), or None.

    The start needs no precision: its passes are float32 when ``sums`` is the numpy pass.
    """
    sub = _float32_sums if sums is nll_derivative_sums else sums
    try:
        start, _ = fit_temperature_nll(z[::8], y[::8], bounds, max_iter, tol=1e-4, sums=sub,
                                       want_nll_at_1=False)
    except (TemperatureFitError, RuntimeError, ArithmeticError):
        return None
    return start if math.isfinite(start) and start > 0 else None


def _check_finite_optimum(tot):
    """Raise TemperatureFitError when the sums at the first pass show no finite optimum in (0, inf)."""
    if tot[6] == 0:
        raise TemperatureFitError(
            "logits: every row's label has the largest logit, so the NLL keeps falling as T -> 0 "
            "and no temperature minimises it; give bounds=(low, high) to fit within a range")
    if tot[5] / tot[0] >= 0:
        raise TemperatureFitError(
            "logits: the labels' logits are on average no higher than the mean logit, so the NLL "
            "falls as T -> inf (uniform predictions): the logits carry no usable ranking")


def _halley_step(g, h, t3):
    """(step in a, whether it is a Halley step) from f', f'' and f''' at a.

    Halley when its correction factor c is below 1/2, else Newton; an infinite step
    toward the descent side when f'' is not positive."""
    if not h > 0:
        return -math.copysign(math.inf, g), False
    newton = -g / h
    c = (g / h) * (t3 / h) / 2.0  # not g t3 / h^2: h^2 underflows on separable rows
    if abs(c) < 0.5:
        return newton / (1.0 - c), True
    return newton, False


def _last_step(br, a, cand, step, halley, tol, derivs):
    """(a, f, f') at the optimum when this pass ends the fit, else None.

    derivs: (f, f', f'', f''', f'''', f''''') at a, step: the Halley/Newton step, cand the
    point it leads to (inside the bracket). Converged (the step below tol, relative; 0.1
    sqrt(tol) for a Halley step): cand, with the cubic Taylor values of f and f' there.
    Close (the step within 5% of a): the root of the 5-term Taylor model of f', when
    that model's terms shrink fast enough that the next one moves it by < tol / 10^4 (a
    margin of 100 below tol / 100: the cumulants can grow faster than geometrically).
    """
    f, g, h, t3, t4, t5 = derivs
    if abs(step) <= (math.sqrt(tol) * 0.1 if halley else tol) * a:
        return (cand, f + (g * step + h * step * step / 2 + t3 * step**3 / 6),
                g + (h * step + t3 * step * step / 2))
    if h > 0 and abs(step) <= 0.05 * a:
        taylor = _taylor_root(g, h, t3, t4, t5, step, 1e-4 * tol * a)
        if taylor is not None and br.lo < a + taylor[0] < br.hi:
            ds, f_gain, g_new = taylor
            return a + ds, f + f_gain, g_new
    return None


class _Bracket:
    """What the passes so far know of the optimum a* = 1/T*: a* in [lo, hi], within the
    search range [a_min, a_max]; and the last step, to detect slow progress."""

    def __init__(self, bounds):
        self.a_min, self.a_max = (0.0, math.inf) if bounds is None else (1.0 / bounds[1], 1.0 / bounds[0])
        self.lo, self.hi = self.a_min, self.a_max
        self.prev_step = None

    def clamp(self, a):
        return min(max(a, self.a_min), self.a_max)

    def update(self, a, g) -> bool:
        """Narrow the bracket by the sign of f'(a) = g; False when g == 0 (a is the optimum)."""
        if g > 0:
            self.hi = a
        elif g < 0:
            self.lo = a
        else:
            return False
        return True

    def at_bound(self, a, g) -> bool:
        """True when the optimum lies at (or beyond) the search range's end a."""
        return (a == self.a_max and g < 0) or (a == self.a_min and g > 0)

    def collapsed(self) -> bool:
        return self.lo > 0 and self.hi / self.lo - 1.0 < 1e-15

    def next_point(self, a, step):
        """a + step, or further along it on slow progress (the point may leave the bracket).

        Slow progress toward a side nothing has bracketed yet (separable rows: the NLL
        tail is ~exp(-a margin), where Newton adds only ~1/margin to a per pass): when
        a step is not at least half as short as the previous one in the same direction,
        move geometrically instead (x2 in a, or /2), reaching a bound in log2 passes.
        """
        cand = a + step
        prev, self.prev_step = self.prev_step, step
        if prev is not None and step * prev > 0 and abs(step) > 0.5 * abs(prev):
            if step > 0 and self.hi == self.a_max:
                cand = max(cand, min(2.0 * a, self.a_max))
            elif step < 0 and self.lo == self.a_min:
                cand = min(cand, max(a / 2.0, self.a_min))
        return cand

    def outside(self, a, cand):
        """The next a when the step left the bracket: toward an untested side a factor 10
        (the range's end when that reaches it); inside a known bracket, its midpoint."""
        if cand >= self.hi:
            return min(10.0 * a, self.a_max) if self.hi == self.a_max else _mid(self.lo, self.hi)
        cand = max(a / 10.0, self.a_min) if self.lo == self.a_min else _mid(self.lo, self.hi)
        return a / 10.0 if cand == 0.0 else cand


def _floored(x, x_min, floor):
    """x clamped below at ``floor`` in place, only when its minimum ``x_min`` is below."""
    if x_min < floor:
        np.maximum(x, floor, out=x)
    return x


def _taylor_root(g, h, t3, t4, t5, step, atol):
    """The root s of g + h s + t3 s^2/2 + t4 s^3/6 + t5 s^4/24 near ``step`` (Newton), when
    the model's terms decrease geometrically at s with ratio rho < 1/2 and the estimated
    remainder |t5 s^4/24| rho / (1 - rho) / h is at most ``atol`` in a; otherwise None.
    Returns (s, f(a + s) - f(a), f'(a + s)) from the 6-term model of f."""
    s = step
    for _ in range(4):
        gs = g + s * (h + s * (t3 / 2 + s * (t4 / 6 + s * t5 / 24)))
        hs = h + s * (t3 + s * (t4 / 2 + s * t5 / 6))
        if not hs > 0:
            return None
        s -= gs / hs
    terms = [abs(h * s), abs(t3 * s * s / 2), abs(t4 * s**3 / 6), abs(t5 * s**4 / 24)]
    if min(terms[:3]) == 0.0:
        return None
    rho = max(terms[i + 1] / terms[i] for i in range(3))
    if not (rho < 0.5 and terms[3] * rho / (1.0 - rho) / h <= atol):
        return None
    gs = g + s * (h + s * (t3 / 2 + s * (t4 / 6 + s * t5 / 24)))
    df = s * (g + s * (h / 2 + s * (t3 / 6 + s * (t4 / 24 + s * t5 / 120))))
    return s, df, gs


def _float32_sums(z, y, a, also_at=None, with_mean=True):
    """nll_derivative_sums in float32: for the starting point of a fit only."""
    return nll_derivative_sums(z, y, a, also_at, dtype=np.float32, with_mean=with_mean)


def _mid(lo, hi):
    return math.sqrt(lo * hi) if lo > 0 and math.isfinite(hi) else (lo + hi) / 2


def _fit_temperature_ece(z, y, bounds, n_bins):
    from calibrate.metrics.calibration import ece

    def obj(log_t):
        return ece(np.exp(log_softmax64(z / math.exp(log_t))), y, n_bins)

    grid = np.linspace(math.log(bounds[0]), math.log(bounds[1]), 400)
    vals = np.array([obj(g) for g in grid])
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(obj, bounds=(a, b), method="bounded", options={"xatol": 1e-6})
    log_t = res.x if res.fun <= vals[i] else grid[i]
    t = math.exp(log_t)
    at_bound = i in (0, grid.size - 1)
    return t, {"grad_log_t": float("nan"), "n_iter": grid.size + res.nfev, "at_bound": at_bound}


_BLOCK_VALUES = 32 * BLOCK_BYTES // 8  # float64 values per row block: 32 blocks (16 MiB)


def _blocks(n, k):
    rows = max(1, _BLOCK_VALUES // k)
    return [(s, min(s + rows, n)) for s in range(0, n, rows)]


def _brier_at(z, y, t):
    tot = 0.0
    for s, e in _blocks(*z.shape):
        p = np.exp(log_softmax64(z[s:e] / t))
        p[np.arange(e - s), y[s:e]] -= 1.0
        tot += float(np.einsum("ij,ij->", p, p))
    return tot / z.shape[0]


def _nll_at(z, y, t):
    tot = 0.0
    for s, e in _blocks(*z.shape):
        tot -= float(np.sum(log_softmax64(z[s:e] / t)[np.arange(e - s), y[s:e]]))
    return tot / z.shape[0]


def _fit_temperature_search(z, y, bounds, fn):
    grid = np.linspace(math.log(bounds[0]), math.log(bounds[1]), 60)
    vals = [fn(z, y, math.exp(g)) for g in grid]
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(lambda g: fn(z, y, math.exp(g)), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-10})
    return math.exp(res.x) if res.fun <= vals[i] else math.exp(grid[i])


def fit_temperature_brier(z, y, bounds=(0.05, 100.0)):
    """T in ``bounds`` minimising the Brier score of softmax(z / T) (a log-spaced grid of 60,
    then a bounded scalar search around its best point)."""
    return _fit_temperature_search(z, y, bounds, _brier_at)
