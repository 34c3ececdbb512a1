"""Bootstrap intervals of the risk-coverage numbers (AURC, E-AURC, AUGRC, risk at coverage, the curve).

:class:`SelectiveResampler` bootstraps the risk-coverage numbers without re-sorting: the
rows are sorted and grouped by distinct confidence once, and a resample only changes how
many rows (and errors) each group holds, so each resample is two ``bincount`` calls, O(n).
:func:`selective_intervals` and :func:`risk_coverage_band` also resample counts of at most
G contiguous confidence groups (Poisson bootstrap), O(G) per resample whatever n.

Shapes: ``confidence`` (n,) float, ``correct`` (n,) 0/1 or bool.
"""

from __future__ import annotations

import numpy as np

from calibrate._core import ranking
from calibrate._core.interval import Interval
from calibrate._core.validation import InputError, check_confidence_level, check_n_resamples
from calibrate.metrics import selective
from calibrate.metrics.selective import _check_conf_correct


# ------------------------------------------------------------------ selective bootstrap
class SelectiveResampler:
    """Risk-coverage numbers of (confidence, correct) on bootstrap resamples, O(n) each.

    ``values(rows)`` gives the numbers of the resample ``confidence[rows], correct[rows]``
    (rows: (n,) int indices, drawn with replacement), equal to the functions of
    :mod:`calibrate.metrics.selective` on the resampled arrays: aurc, eaurc, augrc,
    risk@<c> for each coverage c, and ``curve``, the risk at each coverage of ``grid``
    (the :func:`calibrate.metrics.selective.risk_at_coverage` rule: the smallest achievable
    coverage >= the one asked).
    """

    def __init__(self, confidence, correct, coverages=(0.8, 0.9), grid=None):
        c, ok = _check_conf_correct(confidence, correct)
        self.coverages = tuple(selective._check_fraction(v, "coverage", low_open=True) for v in coverages)
        self.grid = np.linspace(0.05, 1.0, 96) if grid is None else np.asarray(grid, dtype=np.float64)
        if self.grid.ndim != 1 or self.grid.size == 0 or self.grid.min() <= 0 or self.grid.max() > 1:
            raise InputError("grid: expected a 1-d array of coverages in (0, 1]")
        self.groups = ranking.TieGroups(c)  # most confident first
        self.order = self.groups.order
        self.gid = self.groups.row_group
        self.wrong = 1.0 - ok
        self.m = self.groups.m
        self.n = c.size

    def _numbers(self, cnt: np.ndarray, err: np.ndarray) -> dict:
        n = self.n
        aurc = ranking.aurc(err, cnt)
        out = {"aurc": aurc, "eaurc": aurc - ranking.aurc_optimal(round(n - err.sum()), n),
               "augrc": ranking.augrc(err, cnt)}
        at = ranking.risk_at_coverage(err, cnt, np.concatenate([self.coverages, self.grid]))
        for c, r in zip(self.coverages, at):
            out[f"risk@{c:g}"] = float(r)
        out["curve"] = at[len(self.coverages):]
        return out

    def estimate(self) -> dict:
        """The numbers on the full sample."""
        return self._numbers(self.groups.counts(), self.groups.counts(self.wrong))

    def values(self, rows) -> dict:
        """The numbers on the resample ``rows`` ((n,) int indices)."""
        r = np.asarray(rows)
        g = self.gid[r]
        return self._numbers(np.bincount(g, minlength=self.m).astype(np.float64),
                             np.bincount(g, weights=self.wrong[r], minlength=self.m))


SELECTIVE_SCHEMES = ("auto", "rows", "groups")


AUTO_ROW_RESAMPLING_MAX_ROWS = 200_000  # "auto": resample rows up to this n, group counts beyond


INTERVAL_MAX_GROUPS = 8192  # "groups": contiguous confidence groups of the interval resamples


def selective_scheme(scheme: str, n: int) -> str:
    """The resampling scheme :func:`selective_intervals` uses for n rows ("auto": "rows" up
    to AUTO_ROW_RESAMPLING_MAX_ROWS, "groups" beyond)."""
    if scheme not in SELECTIVE_SCHEMES:
        raise InputError(f"scheme: expected one of {', '.join(SELECTIVE_SCHEMES)}, got {scheme!r}")
    if scheme == "auto":
        return "rows" if n <= AUTO_ROW_RESAMPLING_MAX_ROWS else "groups"
    return scheme


def selective_intervals(confidence, correct, *, coverages=(0.8, 0.9), grid=None, n_resamples: int = 1000,
                        confidence_level: float = 0.95, seed: int = 0, scheme: str = "auto",
                        max_groups: int = INTERVAL_MAX_GROUPS) -> dict:
    """Risk-coverage numbers with percentile bootstrap intervals.

    Returns {"aurc" | "eaurc" | "augrc" | "risk@<c>": :class:`~calibrate.resampling.Interval`
    (percentile; its scheme "multinomial" for rows, "poisson" for groups), "curve":
    {"coverage" (g,), "estimate" (g,), "low" (g,), "high" (g,)}, "scheme": the scheme used,
    "n_resamples", "n_groups" (None for "rows")}. The estimates are always the exact
    numbers of :mod:`calibrate.metrics.selective`.

    scheme "rows": resample b uses rows ``default_rng(seed).integers(0, n, n)`` (the b-th
    draw), O(n) per resample. "groups": Poisson bootstrap over rows resampled as counts
    of at most ``max_groups`` contiguous confidence groups (see :func:`risk_coverage_band`:
    the counts of wrong and correct rows of each group are independent Poisson draws,
    exactly the row weights summed per group), O(G) per resample whatever n. Inside a
    group the rows count as tied, which moves every number by a nearly constant
    O(1/G) amount; the resampled values are shifted by (exact estimate - grouped
    estimate), which removes it to first order (a basic bias correction of the grouping,
    not of the bootstrap). "auto": "rows" up to AUTO_ROW_RESAMPLING_MAX_ROWS rows.
    """
    n_resamples = check_n_resamples(n_resamples)
    confidence_level = check_confidence_level(confidence_level)
    selective_scheme(scheme, 0)  # checked before any work
    if isinstance(max_groups, bool) or not isinstance(max_groups, (int, np.integer)) or max_groups < 1:
        raise InputError(f"max_groups: expected a positive integer, got {max_groups!r}")
    rs = SelectiveResampler(confidence, correct, coverages, grid)
    est = rs.estimate()
    keys = [k for k in est if k != "curve"]
    scheme = selective_scheme(scheme, rs.n)
    n_groups = None
    if scheme == "rows":
        rng = np.random.default_rng(seed)
        draws = {k: np.empty(n_resamples) for k in keys}
        curves = np.empty((n_resamples, rs.grid.size))
        for b in range(n_resamples):
            v = rs.values(rng.integers(0, rs.n, rs.n))
            for k in keys:
                draws[k][b] = v[k]
            curves[b] = v["curve"]
    else:
        c, ok = _check_conf_correct(confidence, correct)
        err, cor = _contiguous_groups(c, ok, int(max_groups), groups=rs.groups)
        n_groups = int(err.size)
        draws, curves = _grouped_resamples(err, cor, rs.coverages, rs.grid, int(n_resamples), seed)
        flat = _grouped_numbers(err[None, :], cor[None, :], rs.coverages, rs.grid)
        for k in keys:
            draws[k] += est[k] - flat[k][0]
        curves += est["curve"] - flat["curve"][0]
    a = (1.0 - confidence_level) / 2.0
    weights = "multinomial" if scheme == "rows" else "poisson"
    out = {}
    for k in keys:
        lo, hi = np.quantile(draws[k], [a, 1.0 - a])
        out[k] = Interval(float(lo), float(hi), est[k], confidence_level, n_resamples, "percentile", weights)
    lo, hi = np.quantile(curves, [a, 1.0 - a], axis=0)
    out["curve"] = {"coverage": rs.grid, "estimate": est["curve"], "low": lo, "high": hi}
    out.update(scheme=scheme, n_resamples=int(n_resamples), n_groups=n_groups)
    return out


def _grouped_numbers(err: np.ndarray, cor: np.ndarray, coverages, grid) -> dict:
    """The risk-coverage numbers of (R, G) per-group counts of wrong and correct rows (most
    confident group first; each group accepted as a whole): {key: (R,)}, curve (R, g)."""
    cnt = err + cor
    n = cnt.sum(axis=1)
    aurc = ranking.aurc(err, cnt)
    out = {"aurc": aurc, "eaurc": aurc - ranking.aurc_optimal(n - err.sum(axis=1), n), "augrc": ranking.augrc(err, cnt)}
    at = ranking.risk_at_coverage(err, cnt, np.concatenate([np.asarray(coverages, dtype=np.float64), grid]))
    for m, c in enumerate(coverages):
        out[f"risk@{c:g}"] = at[:, m]
    out["curve"] = at[:, len(coverages):]
    return out


def _grouped_resamples(err, cor, coverages, grid, n_resamples: int, seed: int):
    """Poisson-bootstrap draws of the grouped numbers: ({key: (R,)}, curves (R, g)).
    Draws: ``default_rng(seed).poisson`` of (rows, G) blocks, errors then correct rows."""
    rng = np.random.default_rng(seed)
    keys = ["aurc", "eaurc", "augrc"] + [f"risk@{c:g}" for c in coverages]
    draws = {k: np.empty(n_resamples) for k in keys}
    curves = np.empty((n_resamples, len(grid)))
    block = max(1, 4_000_000 // err.size)
    for b0 in range(0, n_resamples, block):
        r = min(block, n_resamples - b0)
        v = _grouped_numbers(rng.poisson(err, (r, err.size)).astype(np.float64),
                             rng.poisson(cor, (r, cor.size)).astype(np.float64), coverages, grid)
        for k in keys:
            draws[k][b0:b0 + r] = v[k]
        curves[b0:b0 + r] = v["curve"]
    return draws, curves


BAND_MAX_GROUPS = 2048  # risk-coverage band: contiguous groups of rows (by confidence) resampled as counts


def _contiguous_groups(c: np.ndarray, ok: np.ndarray, max_groups: int, groups: ranking.TieGroups | None = None):
    """Rows sorted by decreasing confidence (``groups``, when the caller has them), cut into at
    most ``max_groups`` contiguous groups of about n / max_groups rows, only where the
    confidence changes (ties never split). Returns (errors, correct) per group, (G,)
    float64 each, most confident first."""
    g = ranking.TieGroups(c) if groups is None else groups
    cut = g.coarsened(max_groups)
    err = np.diff(g.cumulative(1.0 - ok)[np.searchsorted(g.ends, cut)], prepend=0.0)
    rows = np.diff(cut, prepend=0).astype(np.float64)
    return err, rows - err


def risk_coverage_band(confidence, correct, *, grid=None, n_resamples: int = 1000, confidence_level: float = 0.95,
                       seed: int = 0, max_groups: int = BAND_MAX_GROUPS) -> dict:
    """Pointwise percentile band of the risk-coverage curve, Poisson bootstrap over rows
    resampled as group counts: O(n log n) once, then O(G) per resample whatever n.

    The rows are sorted by confidence once and cut into G <= ``max_groups`` contiguous
    groups (about n / G rows each, never splitting tied scores). Under the Poisson
    bootstrap (each row weighted by an independent Poisson(1) count; Hanley & MacGibbon
    2006) the weighted numbers of wrong and of correct rows in group g are independent
    Poisson(e_g) and Poisson(c_g) draws, exactly the row-level weights summed over the
    group, so the resampled (coverage, risk) at every group boundary has exactly the
    row-level Poisson bootstrap distribution. Resolution: the risk at a coverage of
    ``grid`` is the risk at the first group boundary at or above it (stepwise, the
    :func:`calibrate.metrics.selective.risk_at_coverage` rule on group boundaries), so coverage
    is resolved to one group (about 1 / G) beyond the one asked.
    grid: (g,) coverages in (0, 1] (default 96 points from 0.05 to 1). Returns
    {"coverage" (g,), "low" (g,), "high" (g,), "n_groups", "n_resamples", "scheme"}.
    Draws: ``default_rng(seed).poisson`` of (rows, G) blocks, errors then correct rows.
    """
    n_resamples = check_n_resamples(n_resamples)
    confidence_level = check_confidence_level(confidence_level)
    if isinstance(max_groups, bool) or not isinstance(max_groups, (int, np.integer)) or max_groups < 1:
        raise InputError(f"max_groups: expected a positive integer, got {max_groups!r}")
    c, ok = _check_conf_correct(confidence, correct)
    grid = np.linspace(0.05, 1.0, 96) if grid is None else np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or grid.min() <= 0 or grid.max() > 1:
        raise InputError("grid: expected a 1-d array of coverages in (0, 1]")
    err, cor = _contiguous_groups(c, ok, int(max_groups))
    _, curves = _grouped_resamples(err, cor, (), grid, int(n_resamples), seed)
    a = (1.0 - confidence_level) / 2.0
    lo, hi = np.quantile(curves, [a, 1.0 - a], axis=0)
    return {"coverage": grid, "low": lo, "high": hi, "n_groups": int(err.size), "n_resamples": int(n_resamples),
            "scheme": "Poisson bootstrap over rows, resampled as group counts"}

