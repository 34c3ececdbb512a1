"""The top-label NLL and ECE before and after a fit, from the values the fit itself computed.

``calibrate fit`` prints the NLL and the top-label ECE (equal-width bins) of the logits
before (softmax(z)) and after calibration. For temperature scaling the fit's own passes
over the (n, k) logits already compute, per row, with zs = z - max_j z:

- gap = zs_y (the label's logit minus the top one) and the arg-max (the same at every T > 0);
- lse_a = log sum_j exp(a zs_j) at the pass's a = 1/T, and at a = 1 on the first pass;
- m = E_p[zs] and the central moments mu_2..mu_5 of zs under p = softmax(a zs) at the last
  pass's a, and the largest gap max_j -zs_j over the row's block.

From these (n,) arrays: NLL(a) = mean(lse_a - a gap); the top-label confidence is
exp(-lse_a) (the arg-max has zs = 0); correct = [arg-max = y]. So the summary needs no
pass of its own when the fit's last pass was at the fitted T. When the fit ended with a
Taylor step d from its last pass at a0 (the usual case, see fit_temperature_nll), with
c = zs - m, lse_{a0 + d} = lse_{a0} + d m + log E_p[exp(d c)], and the exponential's series
to order 5 gives

    lse_{a0 + d} = lse_{a0} + d m + log(1 + sum_{r=2..5} d^r mu_r / r!) + E,
    |E| <= B / (1 - 2 B),  B = d^6 mu_4 L^2 / 720 * exp(max(d c, 0) over the row)

(Lagrange's remainder of exp, E_p[c^6] <= mu_4 L^2 with L = max |c|; E_p[exp(d c)] >= 1 by
Jensen). With zs in [-g, 0] (g: the largest gap of the row's block), c lies in [-g - m, -m],
so L <= max(g + m, -m), and max d c <= -d m for d > 0, <= |d| (g + m) for d < 0. A row is
taken from its series when that bound is at most ``ROW_ATOL``; the other rows' lse is
computed from their logits (one exponential per value of those rows only; all rows when
more than half fail). Beyond the fit's own sums, the record's work in a pass is the arg-max.
With k <= ``SERIES_MIN_K`` columns the moments are not kept: the exact pass over (n, k)
costs less than 8 per-row moments in memory (64 bytes a row, more than the input's 4 k).
:class:`TemperatureFitRecord` holds these arrays (n-sized, never (n, k));
:func:`fit_with_summary` fits any calibrator and returns the summary, through the record
for TemperatureScaling and through a separate pass
(:func:`calibrate.metrics.toplabel.nll_ece_in_blocks`) for every other method.
"""

from __future__ import annotations

import numpy as np

from calibrate._core import binning as _binning
from calibrate._core import stats as _stats
from calibrate._core.blocks import BLOCK_BYTES, is_dask, row_blocks, row_max
from calibrate._core.validation import check_n_bins

ROW_ATOL = 1e-12  # the largest error bound of a row's lse taken from its moment series
_ROUNDING = 1e-13  # relative: mu_4's rounding, against the sum of its terms' magnitudes
_MOST_ROWS_FAILING = 0.5  # above this share of rows recomputed, one pass over all rows instead
SERIES_MIN_K = 64  # up to this many columns one exact pass costs less than keeping 8 moments a row


class TemperatureFitRecord:
    """Per-row values of a temperature fit's full passes, for its summary.

    Pass it as ``record=`` to :meth:`TemperatureScaling.fit
    <calibrate.calibrators.scaling.TemperatureScaling.fit>` or
    :func:`~calibrate.calibrators.temperature_solver.fit_temperature_nll`. After the fit:
    ``scale`` (a = 1/T), ``lse_before`` and ``lse_after`` ((n,) float64 log sum_j exp(a zs_j)
    at a = 1 and at the fitted a), ``gap`` ((n,) float64 zs_y) and ``correct`` ((n,) bool,
    arg-max = label, the first maximum on ties), and ``rows_recomputed`` (how many rows'
    lse at the fitted a came from their logits instead of the last pass's moment series;
    n when the whole pass was redone, 0 when none or when the last pass was at a).
    Memory: about 25 bytes per row, and 64 more (the last pass's moments) when k > SERIES_MIN_K.
    """

    def __init__(self):
        self._lse: dict[float, list] = {}  # a -> the (m,) blocks of the latest pass at a
        self._gap: list = []
        self._top: list = []
        self._cum: tuple = (None, [])  # (a, [(moments, raw, zmin) of each block]) of the latest pass
        self._rows_done = False  # _gap and _top hold a whole pass
        self.scale = self.lse_before = self.lse_after = self.gap = self.correct = None
        self.rows_recomputed = None

    def add(self, start, zs, axis, zy, a, lse, also_at, lse_also, moments=None, raw=None, zmin=None,
            absent=None) -> None:
        """One block of a pass (called by nll_derivative_sums): zs (m, k) (axis 1) or (k, m)
        (axis 0) float64 logits minus the row maximum (0 where absent), zy (m,) the label's
        zs, lse (m,) at a, lse_also (m,) at also_at (None when also_at is None); moments:
        (m,) arrays E_p[zs], mu_2..mu_5 under p = softmax(a zs); raw: (m,) arrays
        r_i = E_p[zs^i], i = 2..4; zmin: the block's smallest zs; absent: -inf mask or None."""
        if start == 0:
            self._rows_done = self._rows_done or bool(self._gap)
            self._lse = {b: v for b, v in self._lse.items() if b == 1.0}
            for b in (a, also_at):
                if b is not None:
                    self._lse[b] = []
            self._cum = (float(a), [])
        self._lse[a].append(np.asarray(lse, dtype=np.float64))
        if moments is not None and self._cum[0] == float(a) and zs.shape[axis] > SERIES_MIN_K:
            self._cum[1].append((moments, raw, zmin))  # kept as they come: no per-block work
        if also_at is not None:
            self._lse[also_at].append(np.asarray(lse_also, dtype=np.float64))
        if not self._rows_done:
            self._gap.append(np.asarray(zy, dtype=np.float64))
            self._top.append((zs if absent is None else np.where(absent, -np.inf, zs)).argmax(axis=axis))

    def finish(self, z, y, a: float) -> None:
        """Complete the record at the fitted a = 1/T: lse at a from the last pass's cumulant
        series where it is accurate (module docstring), the rest (lse at a or at 1, the gaps
        and arg-maxes, when no full pass computed them) from z (n, k) in row blocks."""
        n, k = z.shape
        y = np.asarray(y)
        a = float(a)
        got = {b: np.concatenate(v) for b, v in self._lse.items() if v}
        got = {b: v for b, v in got.items() if v.shape[0] == n}
        rows_done = bool(self._gap) and sum(g.shape[0] for g in self._gap) == n
        self.rows_recomputed = 0
        a0, cum = self._cum
        if a not in got and a0 in got and sum(c[0][0].shape[0] for c in cum) == n:
            lse, bad = moment_series(got[a0], _row_moments(cum), a - a0)
            if bad.size <= _MOST_ROWS_FAILING * n:
                if bad.size:
                    lse[bad] = _lse_rows(z, bad, a)
                got[a] = lse
                self.rows_recomputed = int(bad.size)
        need = [b for b in dict.fromkeys((1.0, a)) if b not in got]
        if a in need:
            self.rows_recomputed = n
        if need or not rows_done:
            lse, gap, top = _lse_pass(z, y, need, not rows_done)
            got.update(lse)
            if not rows_done:
                self._gap, self._top = gap, top
        self.scale = a
        self.lse_before, self.lse_after = got[1.0], got[a]
        self.gap = np.concatenate(self._gap)
        self.correct = np.concatenate(self._top) == y
        self._lse, self._gap, self._top, self._cum = {}, [], [], (None, [])

    def nll(self, after: bool = True) -> float:
        """Mean NLL of softmax(a z): mean(lse_a - a zs_y), a = the fitted 1/T (after) or 1."""
        a, lse = (self.scale, self.lse_after) if after else (1.0, self.lse_before)
        return float(np.sum(lse - a * self.gap) / lse.shape[0])

    def confidence(self, after: bool = True) -> np.ndarray:
        """(n,) float64 top-label confidence exp(-lse_a)."""
        return np.exp(-(self.lse_after if after else self.lse_before))

    def ece(self, n_bins: int = 15, after: bool = True) -> float:
        """Top-label ECE with ``n_bins`` equal-width bins (the rule of calibrate.metrics.ece)."""
        bins = _stats.Bins(_binning.equal_width_edges(check_n_bins(n_bins)))
        state = bins.update_values(bins.zeros(), self.confidence(after), self.correct.astype(np.float64))
        return float(bins.finish(state))

    def summary(self, n_bins: int = 15) -> list[dict]:
        """[{"nll", "ece"} before (T = 1), {"nll", "ece"} after (the fitted T)]: the values of
        :func:`calibrate.metrics.toplabel.nll_ece_in_blocks` for (None, the calibrator)."""
        if self.scale is None:
            raise ValueError("TemperatureFitRecord: not finished (fit a TemperatureScaling with record= first)")
        return [{"nll": self.nll(after), "ece": self.ece(n_bins, after)} for after in (False, True)]


def _row_moments(blocks) -> np.ndarray:
    """(7, n) float64 [m, mu_2..mu_5, an upper bound of mu_4 (its rounding added), the largest
    gap g = -zmin of the row's block] from the blocks' (moments, raw, zmin) of a pass."""
    m, mu2, mu3, mu4, mu5 = (np.concatenate([b[0][i] for b in blocks]) for i in range(5))
    r2, r3, r4 = (np.concatenate([b[1][i] for b in blocks]) for i in range(3))
    gap = np.repeat([-float(b[2]) for b in blocks], [b[0][0].shape[0] for b in blocks])
    m2, am = m * m, np.abs(m)
    mu4_hi = np.maximum(mu4, 0.0) + _ROUNDING * (r4 + 4.0 * am * np.abs(r3) + 6.0 * m2 * r2 + 3.0 * m2 * m2)
    return np.stack([m, mu2, mu3, mu4, mu5, mu4_hi, gap])


def moment_series(lse0, rows, d: float) -> tuple:
    """(lse (n,) float64 at a0 + d from the series, (q,) int rows where its bound exceeds ROW_ATOL).

    lse0: (n,) log sum_j exp(a0 zs_j); rows: (7, n) [m, mu_2..mu_5, mu_4's upper bound, the
    largest gap g] of zs under softmax(a0 zs) (module docstring: the series and its bound).
    """
    m, mu2, mu3, mu4, mu5, mu4_hi, gap = rows
    u = d * d * (mu2 / 2.0 + d * (mu3 / 6.0 + d * (mu4 / 24.0 + d * mu5 / 120.0)))
    span = np.maximum(gap + m, -m)  # L >= |c| = |zs - m| over the row
    reach = d * -m if d > 0 else -d * (gap + m)  # >= the largest d c over the row
    with np.errstate(over="ignore", invalid="ignore"):
        b = d**6 * mu4_hi * span * span / 720.0 * np.exp(np.maximum(reach, 0.0))
        bound = np.where(b < 0.25, b / (1.0 - 2.0 * b), np.inf)
    lse = lse0 + d * m + np.log1p(u)
    return lse, np.flatnonzero(~(bound <= ROW_ATOL))


def _lse_rows(z, rows, a: float) -> np.ndarray:
    """(len(rows),) log sum_j exp(a (z_j - max z)) of z's rows ``rows`` (sorted ints), in
    blocks of rows (one exponential per value of those rows only)."""
    k = z.shape[1]
    out = []
    step = max(1, BLOCK_BYTES // (8 * k))
    for s in range(0, rows.size, step):
        zb = np.asarray(z[rows[s:s + step]])
        zs = np.subtract(zb, row_max(zb)[:, None], dtype=np.float64)
        zs *= a
        np.exp(zs, out=zs)
        out.append(np.log(zs.sum(axis=1)))
    return np.concatenate(out) if out else np.zeros(0)


def _lse_pass(z, y, scales, with_rows):
    """One pass over z (n, k) in row blocks: {a: (n,) lse at a for a in scales}, and, when
    with_rows, the blocks of zs_y and of the arg-max (else two empty lists)."""
    n, k = z.shape
    out = {b: [] for b in scales}
    gap, top = [], []
    for s in row_blocks(n, k, 8, BLOCK_BYTES):
        zb = z[s]
        zs = np.subtract(zb, row_max(zb)[:, None], dtype=np.float64)
        if with_rows:
            gap.append(zs[np.arange(zs.shape[0]), y[s]])
            top.append(zs.argmax(axis=1))
        e = zs if len(scales) == 1 else np.empty_like(zs)
        for b in scales:
            if b != 1.0:
                np.multiply(zs, b, out=e)
            elif e is not zs:
                np.copyto(e, zs)
            np.exp(e, out=e)
            out[b].append(np.log(e.sum(axis=1)))
    return {b: np.concatenate(v) if v else np.zeros(0) for b, v in out.items()}, gap, top


def fit_with_summary(cal, logits, labels, n_bins: int = 15, kind: str | None = "logits") -> list[dict]:
    """Fit ``cal`` on (logits (n, k), labels (n,)) and return [{"nll", "ece"} before, after]
    on the fitting data (top-label ECE, ``n_bins`` equal-width bins; labels: indices 0..k-1).

    TemperatureScaling (numpy or memory-mapped logits) records the summary during its fit
    (:class:`TemperatureFitRecord`); any other calibrator is fitted, then summarised by one
    separate pass (:func:`calibrate.metrics.toplabel.nll_ece_in_blocks`).
    """
    from calibrate.calibrators.scaling import TemperatureScaling

    if isinstance(cal, TemperatureScaling) and not is_dask(logits):
        record = TemperatureFitRecord()
        cal.fit(logits, labels, kind=kind, record=record)
        return record.summary(n_bins)
    from calibrate.metrics.toplabel import nll_ece_in_blocks

    cal.fit(logits, labels, kind=kind)
    return nll_ece_in_blocks(logits, labels, n_bins, calibrators=(None, cal))
