"""The summary numbers of one prediction beyond the ECE family, and cheap intervals for them.

:func:`summary_metrics` is what ``calibrate evaluate`` prints: every metric of
:func:`calibrate.metrics.all_metrics` plus

  aurc, augrc              risk-coverage areas of the max probability (:mod:`calibrate.selective`)
  smooth_ece               smooth ECE, automatic bandwidth (:mod:`calibrate.smooth`)
  brier_calibration        REL of Murphy's Brier decomposition, binned one-vs-rest with the
                           ECE's bins (:func:`calibrate.decomposition.brier_decomposition`)
  brier_refinement         Brier - brier_calibration (= UNC - RES + WBV - 2 WBC), so the
                           two add up to the Brier score exactly
  overconfidence,          the signed split of the top-label ECE
  underconfidence          (:func:`calibrate.decomposition.ece_over_under`); they sum to ``ece``

One sort of the confidences serves both risk-coverage areas; the rest is O(n k).

:class:`SelectiveResampler` bootstraps the risk-coverage numbers (AURC, E-AURC, AUGRC,
risk at given coverages, the curve on a coverage grid) without re-sorting: the rows are
sorted and grouped by distinct confidence once, and a resample only changes how many
rows (and errors) each group holds, so each resample is two ``bincount`` calls, O(n).

Shapes: ``probs`` (n, k) float, ``labels`` (n,) int, ``confidence`` (n,) float,
``correct`` (n,) 0/1 or bool.
"""

from __future__ import annotations

import numpy as np

from . import decomposition, metrics, selective, smooth
from ._validation import InputError, check_probs_labels
from .selective import _aurc, _aurc_optimal, _check_conf_correct, _groups

#: the keys summary_metrics adds to metrics.all_metrics, with their labels for printing
BEYOND_NAMES = {
    "aurc": "AURC (max prob.)",
    "augrc": "AUGRC (max prob.)",
    "smooth_ece": "smooth ECE",
    "brier_calibration": "Brier calibration (REL)",
    "brier_refinement": "Brier refinement",
    "overconfidence": "ECE overconfidence",
    "underconfidence": "ECE underconfidence",
}
SUMMARY_NAMES = {**metrics.METRIC_NAMES, **BEYOND_NAMES}


def _augrc(g) -> float:
    """AUGRC from sorted groups: the trapezoid rule of selective.augrc."""
    cov = np.concatenate([[0.0], g.accepted / g.n])
    gr = np.concatenate([[0.0], g.errors / g.n])
    return float(np.sum(np.diff(cov) * (gr[1:] + gr[:-1]) / 2.0))


def summary_metrics(probs, labels, n_bins: int = 15, *, logits=None) -> dict:
    """All of :func:`calibrate.metrics.all_metrics` and the keys of ``BEYOND_NAMES``.

    probs: (n, k) probabilities; labels: (n,) int; logits: optional (n, k) for an exact NLL.
    The risk-coverage areas use the max probability as the confidence score. Returns a
    dict of floats.
    """
    p, y = check_probs_labels(probs, labels)
    out = metrics.all_metrics(p, y, n_bins, logits=logits)
    conf, ok = metrics._top_label(p, y)
    g = _groups(conf.astype(np.float64), ok.astype(np.float64))
    bd = decomposition.brier_decomposition(p, y, n_bins)
    ou = decomposition.ece_over_under(p, y, n_bins)
    out.update({
        "aurc": _aurc(g),
        "augrc": _augrc(g),
        "smooth_ece": smooth.smooth_ece(p, y),
        "brier_calibration": bd["reliability"],
        "brier_refinement": bd["brier"] - bd["reliability"],
        "overconfidence": ou["overconfidence"],
        "underconfidence": ou["underconfidence"],
    })
    return out


#: ``calibrate evaluate`` computes the class-wise quantities (class-wise ECE, the Brier
#: calibration/refinement split: O(n k) bin sums) up to this many classes, or when asked
CLASSWISE_MAX_K = 100
CLASSWISE_KEYS = ("classwise_ece", "brier_calibration", "brier_refinement")


def summary_in_blocks(logits, labels, n_bins: int = 15, *, transform=None, classwise: bool = True) -> dict:
    """:func:`summary_metrics` of softmax(logits) (or of ``transform``'s log-probabilities)
    computed in row blocks: memory is the (n,) top-label confidences plus one block, so a
    memory-mapped (n, k) file is never loaded whole (what ``calibrate evaluate`` calls).

    The Brier reliability term comes from the accumulator's class-wise bin sums (the same
    one-vs-rest equal-width bins as :func:`calibrate.decomposition.brier_decomposition`):
    REL = sum over (class, bin) of (sum p - sum o)^2 / count / n; the over/under-confidence
    split from its top-label bin sums; the risk-coverage areas and the smooth ECE from the
    (n,) confidences and correctness. classwise=False: none of CLASSWISE_KEYS (no
    class-wise bin sums, the O(n k) part).
    """
    from .streaming import evaluate_in_blocks

    res, acc, conf, ok = evaluate_in_blocks(logits, labels, n_bins, transform=transform, return_state=True,
                                            classwise=classwise)
    n = conf.shape[0]
    if classwise:
        cnt = acc.cw_count
        rel = float(np.sum(np.where(cnt > 0, (acc.cw_conf - acc.cw_correct) ** 2 / np.where(cnt > 0, cnt, 1.0),
                                    0.0)) / n)
        res.update({"brier_calibration": rel, "brier_refinement": res["brier"] - rel})
    gap = acc.conf - acc.correct  # per top-label bin: sum of confidence - sum of correctness
    g = _groups(conf, ok.astype(np.float64))
    res.update({
        "aurc": _aurc(g),
        "augrc": _augrc(g),
        "smooth_ece": smooth.smooth_ece(conf, ok.astype(np.float64)),
        "overconfidence": float(np.sum(np.maximum(gap, 0.0)) / n),
        "underconfidence": float(np.sum(np.maximum(-gap, 0.0)) / n),
    })
    return res


# ------------------------------------------------------------------ selective bootstrap
class SelectiveResampler:
    """Risk-coverage numbers of (confidence, correct) on bootstrap resamples, O(n) each.

    ``values(rows)`` gives the numbers of the resample ``confidence[rows], correct[rows]``
    (rows: (n,) int indices, drawn with replacement), equal to the functions of
    :mod:`calibrate.selective` on the resampled arrays: aurc, eaurc, augrc,
    risk@<c> for each coverage c, and ``curve``, the risk at each coverage of ``grid``
    (the :func:`calibrate.selective.risk_at_coverage` rule: the smallest achievable
    coverage >= the one asked).
    """

    def __init__(self, confidence, correct, coverages=(0.8, 0.9), grid=None):
        c, ok = _check_conf_correct(confidence, correct)
        self.coverages = tuple(selective._check_fraction(v, "coverage", low_open=True) for v in coverages)
        self.grid = np.linspace(0.05, 1.0, 96) if grid is None else np.asarray(grid, dtype=np.float64)
        if self.grid.ndim != 1 or self.grid.size == 0 or self.grid.min() <= 0 or self.grid.max() > 1:
            raise InputError("grid: expected a 1-d array of coverages in (0, 1]")
        order = self.order = np.argsort(-c, kind="stable")  # most confident first
        cs = c[order]
        starts = np.concatenate([[True], cs[1:] != cs[:-1]])
        gid_sorted = np.cumsum(starts) - 1
        self.gid = np.empty(c.size, dtype=np.intp)
        self.gid[order] = gid_sorted  # group of each row, 0 = most confident
        self.wrong = 1.0 - ok
        self.m = int(gid_sorted[-1]) + 1
        self.n = c.size

    def _numbers(self, cnt: np.ndarray, err: np.ndarray) -> dict:
        n = self.n
        acc = np.cumsum(cnt)
        errs = np.cumsum(err)
        with np.errstate(invalid="ignore", divide="ignore"):
            risk = np.where(acc > 0, errs / np.maximum(acc, 1.0), 0.0)
        cov = acc / n
        aurc = float(np.sum(cnt / n * risk))
        gr = np.concatenate([[0.0], errs / n])
        augrc = float(np.sum(cnt / n * (gr[1:] + gr[:-1]) / 2.0))
        out = {"aurc": aurc, "eaurc": aurc - _aurc_optimal(round(n - errs[-1]), n), "augrc": augrc}

        def at(targets):
            t = np.asarray(targets, dtype=np.float64)
            j = np.minimum(np.searchsorted(cov, t - 1e-12 * t, side="left"), cov.size - 1)
            return risk[j]

        for c, r in zip(self.coverages, at(self.coverages)):
            out[f"risk@{c:g}"] = float(r)
        out["curve"] = at(self.grid)
        return out

    def estimate(self) -> dict:
        """The numbers on the full sample."""
        return self._numbers(np.bincount(self.gid, minlength=self.m).astype(np.float64),
                             np.bincount(self.gid, weights=self.wrong, minlength=self.m))

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

    Returns {"aurc" | "eaurc" | "augrc" | "risk@<c>": {"estimate", "low", "high",
    "confidence"}, "curve": {"coverage" (g,), "estimate" (g,), "low" (g,), "high" (g,)},
    "scheme": the scheme used, "n_resamples", "n_groups" (None for "rows")}. The
    estimates are always the exact numbers of :mod:`calibrate.selective`.

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
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence_level) < 1.0:
        raise InputError(f"confidence_level: expected a number in (0, 1), got {confidence_level!r}")
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
        err, cor = _contiguous_groups(c, ok, int(max_groups), order=rs.order)
        n_groups = int(err.size)
        draws, curves = _grouped_resamples(err, cor, rs.coverages, rs.grid, int(n_resamples), seed)
        flat = _grouped_numbers(err[None, :], cor[None, :], rs.coverages, rs.grid)
        for k in keys:
            draws[k] += est[k] - flat[k][0]
        curves += est["curve"] - flat["curve"][0]
    a = (1.0 - float(confidence_level)) / 2.0
    out = {}
    for k in keys:
        lo, hi = np.quantile(draws[k], [a, 1.0 - a])
        out[k] = {"estimate": est[k], "low": float(lo), "high": float(hi), "confidence": float(confidence_level)}
    lo, hi = np.quantile(curves, [a, 1.0 - a], axis=0)
    out["curve"] = {"coverage": rs.grid, "estimate": est["curve"], "low": lo, "high": hi}
    out.update(scheme=scheme, n_resamples=int(n_resamples), n_groups=n_groups)
    return out


def _grouped_numbers(err: np.ndarray, cor: np.ndarray, coverages, grid) -> dict:
    """The risk-coverage numbers of (R, G) per-group counts of wrong and correct rows (most
    confident group first; each group accepted as a whole): {key: (R,)}, curve (R, g)."""
    e = np.cumsum(err, axis=1)
    acc = e + np.cumsum(cor, axis=1)
    n = acc[:, -1]
    cnt = err + cor
    with np.errstate(invalid="ignore", divide="ignore"):
        risk = np.where(acc > 0, e / np.maximum(acc, 1.0), 0.0)
    w = cnt / np.maximum(n, 1.0)[:, None]
    aurc = np.sum(w * risk, axis=1)
    gr = e / np.maximum(n, 1.0)[:, None]
    gr_prev = np.concatenate([np.zeros((gr.shape[0], 1)), gr[:, :-1]], axis=1)
    out = {"aurc": aurc, "eaurc": aurc - _aurc_optimal(n - e[:, -1], n),
           "augrc": np.sum(w * (gr + gr_prev) / 2.0, axis=1)}
    cov = acc / np.maximum(n, 1.0)[:, None]
    targets = np.concatenate([np.asarray(coverages, dtype=np.float64), grid])
    targets = targets - 1e-12 * targets
    at = np.empty((cov.shape[0], targets.size))
    for i in range(cov.shape[0]):
        j = np.minimum(np.searchsorted(cov[i], targets, side="left"), cov.shape[1] - 1)
        at[i] = risk[i, j]
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


def _contiguous_groups(c: np.ndarray, ok: np.ndarray, max_groups: int, order: np.ndarray | None = None):
    """Rows sorted by decreasing confidence (``order``, when the caller has it), cut into at
    most ``max_groups`` contiguous groups of about n / max_groups rows, only where the
    confidence changes (ties never split). Returns (errors, correct) per group, (G,)
    float64 each, most confident first."""
    if order is None:
        order = np.argsort(-c, kind="stable")
    cs = c[order]
    wrong = np.cumsum(1.0 - ok[order])
    ends = np.flatnonzero(np.append(cs[1:] != cs[:-1], True)) + 1  # rows accepted at each distinct score
    # the first distinct-score end at or after each target i n / G (duplicates dropped)
    g = min(int(max_groups), c.size)
    targets = np.ceil(np.arange(1, g + 1) * (c.size / g))
    cut = np.unique(ends[np.minimum(np.searchsorted(ends, targets, side="left"), ends.size - 1)])
    err_cum = wrong[cut - 1]
    rows = np.diff(cut, prepend=0).astype(np.float64)
    err = np.diff(err_cum, prepend=0.0)
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
    :func:`calibrate.selective.risk_at_coverage` rule on group boundaries), so coverage
    is resolved to one group (about 1 / G) beyond the one asked.
    grid: (g,) coverages in (0, 1] (default 96 points from 0.05 to 1). Returns
    {"coverage" (g,), "low" (g,), "high" (g,), "n_groups", "n_resamples", "scheme"}.
    Draws: ``default_rng(seed).poisson`` of (rows, G) blocks, errors then correct rows.
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence_level) < 1.0:
        raise InputError(f"confidence_level: expected a number in (0, 1), got {confidence_level!r}")
    if isinstance(max_groups, bool) or not isinstance(max_groups, (int, np.integer)) or max_groups < 1:
        raise InputError(f"max_groups: expected a positive integer, got {max_groups!r}")
    c, ok = _check_conf_correct(confidence, correct)
    grid = np.linspace(0.05, 1.0, 96) if grid is None else np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or grid.min() <= 0 or grid.max() > 1:
        raise InputError("grid: expected a 1-d array of coverages in (0, 1]")
    err, cor = _contiguous_groups(c, ok, int(max_groups))
    _, curves = _grouped_resamples(err, cor, (), grid, int(n_resamples), seed)
    a = (1.0 - float(confidence_level)) / 2.0
    lo, hi = np.quantile(curves, [a, 1.0 - a], axis=0)
    return {"coverage": grid, "low": lo, "high": hi, "n_groups": int(err.size), "n_resamples": int(n_resamples),
            "scheme": "Poisson bootstrap over rows, resampled as group counts"}


def smooth_ece_interval(probs, labels, *, n_resamples: int = 200, confidence_level: float = 0.95, seed: int = 0,
                        sigma: float | None = None) -> dict:
    """Top-label smooth ECE with a percentile bootstrap interval at a FIXED bandwidth.

    The bandwidth is ``sigma`` or the automatic one of the full sample; the resamples are
    :func:`calibrate.smooth.smooth_ece_resamples` (Poisson bootstrap over rows, resampled
    as (cell, outcome) counts: O(cells) per resample whatever n, each row moved at most
    1/4096 in confidence). The estimate is the exact :func:`calibrate.smooth.smooth_ece`.
    probs: (n, k); labels: (n,) int. Returns dict(estimate, low, high, confidence, sigma).
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence_level) < 1.0:
        raise InputError(f"confidence_level: expected a number in (0, 1), got {confidence_level!r}")
    p, y = check_probs_labels(probs, labels)
    conf, ok = metrics._top_label(p, y)
    f, o = conf.astype(np.float64), ok.astype(np.float64)
    est, s = smooth.smooth_ece(f, o, sigma, return_sigma=True)
    draws = smooth.smooth_ece_resamples(f, o, s, n_resamples=int(n_resamples), seed=seed)
    a = (1.0 - float(confidence_level)) / 2.0
    lo, hi = np.quantile(draws, [a, 1.0 - a])
    return {"estimate": est, "low": float(lo), "high": float(hi), "confidence": float(confidence_level), "sigma": s}


# ------------------------------------------------------------------ detection bootstrap
class DetectionResampler:
    """:func:`calibrate.ood.detection_metrics` on bootstrap resamples, O(n) each.

    The pooled scores are sorted and grouped by distinct value once; ``values(rows_in,
    rows_out)`` gives the metrics of ``scores_in[rows_in]`` against ``scores_out[rows_out]``
    (equal to detection_metrics on those arrays) from per-group counts.
    scores_in: (n_in,), scores_out: (n_out,); higher = more in-distribution.
    """

    def __init__(self, scores_in, scores_out, tpr: float = 0.95):
        from .ood import _check_1d_scores

        s_in = _check_1d_scores(scores_in, "scores_in")
        s_out = _check_1d_scores(scores_out, "scores_out")
        if not 0.0 < float(tpr) <= 1.0:
            raise InputError(f"tpr: expected a number in (0, 1], got {tpr!r}")
        self.tpr = float(tpr)
        s = np.concatenate([s_in, s_out])
        order = np.argsort(-s, kind="stable")
        ss = s[order]
        gid = np.empty(s.size, dtype=np.intp)
        gid[order] = np.cumsum(np.concatenate([[True], ss[1:] != ss[:-1]])) - 1
        self.m = int(gid.max()) + 1
        self.gid_in, self.gid_out = gid[: s_in.size], gid[s_in.size:]
        self.n_in, self.n_out = s_in.size, s_out.size

    @staticmethod
    def _ap(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        tp = np.cumsum(pos, axis=-1)
        seen = tp + np.cumsum(neg, axis=-1)  # >= 1 wherever pos > 0
        return np.sum(pos * tp / np.maximum(seen, 1.0), axis=-1) / tp[..., -1]

    def _numbers(self, pos: np.ndarray, neg: np.ndarray) -> dict:
        """Metrics of per-group counts pos, neg: (m,) -> floats, or (r, m) -> (r,) arrays."""
        tp, fp = np.cumsum(pos, axis=-1), np.cumsum(neg, axis=-1)
        tpr_pts, fpr_pts = tp / self.n_in, fp / self.n_out
        prev = np.concatenate([np.zeros(tpr_pts.shape[:-1] + (1,)), tpr_pts[..., :-1]], axis=-1)
        auroc = np.sum(neg / self.n_out * (tpr_pts + prev) / 2.0, axis=-1)
        j = np.argmax(tpr_pts >= self.tpr - 1e-12, axis=-1)
        fpr = np.take_along_axis(fpr_pts, np.asarray(j)[..., None], axis=-1)[..., 0]
        out = {"auroc": auroc, "aupr_in": self._ap(pos, neg), "aupr_out": self._ap(neg[..., ::-1], pos[..., ::-1]),
               "fpr_at_95tpr": fpr}
        return {k: float(v) for k, v in out.items()} if pos.ndim == 1 else out

    def _counts(self, gid: np.ndarray, rows: np.ndarray) -> np.ndarray:
        r = np.atleast_2d(np.asarray(rows))
        flat = (gid[r] + (np.arange(r.shape[0]) * self.m)[:, None]).ravel()
        return np.bincount(flat, minlength=r.shape[0] * self.m).reshape(r.shape[0], self.m).astype(np.float64)

    def estimate(self) -> dict:
        return self._numbers(np.bincount(self.gid_in, minlength=self.m).astype(np.float64),
                             np.bincount(self.gid_out, minlength=self.m).astype(np.float64))

    def values(self, rows_in, rows_out) -> dict:
        """Metrics of one resample (rows_in (n_in,), rows_out (n_out,) int) -> floats, or of
        several at once ((r, n_in), (r, n_out)) -> (r,) arrays."""
        one = np.asarray(rows_in).ndim == 1
        v = self._numbers(self._counts(self.gid_in, rows_in), self._counts(self.gid_out, rows_out))
        return {k: float(x[0]) for k, x in v.items()} if one else v


def detection_intervals(scores_in, scores_out, *, n_resamples: int = 1000, confidence_level: float = 0.95,
                        seed: int = 0) -> dict:
    """Detection metrics with percentile bootstrap intervals, in- and out-of-distribution rows
    resampled separately (resample b: ``integers(0, n_in, n_in)`` then ``integers(0, n_out,
    n_out)`` from ``default_rng(seed)``). Returns {metric: {estimate, low, high, confidence}}."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence_level) < 1.0:
        raise InputError(f"confidence_level: expected a number in (0, 1), got {confidence_level!r}")
    rs = DetectionResampler(scores_in, scores_out)
    est = rs.estimate()
    rng = np.random.default_rng(seed)
    draws = {k: np.empty(n_resamples) for k in est}
    chunk = max(1, 2_000_000 // (rs.n_in + rs.n_out + rs.m))
    for b0 in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - b0)
        rows_in = np.empty((r, rs.n_in), dtype=np.intp)
        rows_out = np.empty((r, rs.n_out), dtype=np.intp)
        for i in range(r):  # the documented draw order, one resample after the other
            rows_in[i] = rng.integers(0, rs.n_in, rs.n_in)
            rows_out[i] = rng.integers(0, rs.n_out, rs.n_out)
        v = rs.values(rows_in, rows_out)
        for k in est:
            draws[k][b0:b0 + r] = v[k]
    a = (1.0 - float(confidence_level)) / 2.0
    out = {}
    for k in est:
        lo, hi = np.quantile(draws[k], [a, 1.0 - a])
        out[k] = {"estimate": est[k], "low": float(lo), "high": float(hi), "confidence": float(confidence_level)}
    return out
