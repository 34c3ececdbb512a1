"""The top-label NLL and ECE before and after a fit, from the values the fit itself computed.

``calibrate fit`` prints the NLL and the top-label ECE (equal-width bins) of the logits
before (softmax(z)) and after calibration. For temperature scaling the fit's own passes
over the (n, k) logits already compute, per row, with zs = z - max_j z:

- gap = zs_y (the label's logit minus the top one) and the arg-max (the same at every T > 0);
- lse_a = log sum_j exp(a zs_j) at the pass's a = 1/T, and at a = 1 on the first pass.

From these (n,) arrays: NLL(a) = mean(lse_a - a gap); the top-label confidence is
exp(-lse_a) (the arg-max has zs = 0); correct = [arg-max = y]. So the summary needs no
pass of its own when the fit's last pass was at the fitted T; when the fit ended with a
Taylor step from its last pass (the usual case, see fit_temperature_nll), lse at the
fitted T costs one exponential per value (one pass, against the two exponentials, the
arg-max and the gather of a separate summary pass). :class:`TemperatureFitRecord` holds
these arrays (n-sized, never (n, k)); :func:`fit_with_summary` fits any calibrator and
returns the summary, through the record for TemperatureScaling and through a separate
pass (:func:`calibrate.metrics.toplabel.nll_ece_in_blocks`) for every other method.
"""

from __future__ import annotations

import numpy as np

from calibrate._core import binning as _binning
from calibrate._core import stats as _stats
from calibrate._core.blocks import BLOCK_BYTES, is_dask, row_blocks, row_max
from calibrate._core.validation import check_n_bins


class TemperatureFitRecord:
    """Per-row values of a temperature fit's full passes, for its summary.

    Pass it as ``record=`` to :meth:`TemperatureScaling.fit
    <calibrate.calibrators.scaling.TemperatureScaling.fit>` or
    :func:`~calibrate.calibrators.temperature_solver.fit_temperature_nll`. After the fit:
    ``scale`` (a = 1/T), ``lse_before`` and ``lse_after`` ((n,) float64 log sum_j exp(a zs_j)
    at a = 1 and at the fitted a), ``gap`` ((n,) float64 zs_y) and ``correct`` ((n,) bool,
    arg-max = label, the first maximum on ties). Memory: about 25 bytes per row.
    """

    def __init__(self):
        self._lse: dict[float, list] = {}  # a -> the (m,) blocks of the latest pass at a
        self._gap: list = []
        self._top: list = []
        self._rows_done = False  # _gap and _top hold a whole pass
        self.scale = self.lse_before = self.lse_after = self.gap = self.correct = None

    def add(self, start, zs, axis, zy, a, lse, also_at, lse_also) -> None:
        """One block of a pass (called by nll_derivative_sums): zs (m, k) (axis 1) or (k, m)
        (axis 0) float64 logits minus the row maximum, zy (m,) the label's zs, lse (m,) at
        a, lse_also (m,) at also_at (None when also_at is None)."""
        if start == 0:
            self._rows_done = self._rows_done or bool(self._gap)
            self._lse = {b: v for b, v in self._lse.items() if b == 1.0}
            for b in (a, also_at):
                if b is not None:
                    self._lse[b] = []
        self._lse[a].append(np.asarray(lse, dtype=np.float64))
        if also_at is not None:
            self._lse[also_at].append(np.asarray(lse_also, dtype=np.float64))
        if not self._rows_done:
            self._gap.append(np.asarray(zy, dtype=np.float64))
            self._top.append(zs.argmax(axis=axis))

    def finish(self, z, y, a: float) -> None:
        """Complete the record at the fitted a = 1/T: what no full pass computed (lse at a,
        at 1, the gaps and arg-maxes) comes from one pass over z (n, k) in row blocks."""
        n, k = z.shape
        y = np.asarray(y)
        got = {b: np.concatenate(v) for b, v in self._lse.items() if v}
        got = {b: v for b, v in got.items() if v.shape[0] == n}
        rows_done = bool(self._gap) and sum(g.shape[0] for g in self._gap) == n
        need = [b for b in dict.fromkeys((1.0, float(a))) if b not in got]
        if need or not rows_done:
            lse, gap, top = _lse_pass(z, y, need, not rows_done)
            got.update(lse)
            if not rows_done:
                self._gap, self._top = gap, top
        self.scale = float(a)
        self.lse_before, self.lse_after = got[1.0], got[float(a)]
        self.gap = np.concatenate(self._gap)
        self.correct = np.concatenate(self._top) == y
        self._lse, self._gap, self._top = {}, [], []

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
