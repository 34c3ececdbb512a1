"""Per-group metrics: every binned / per-row metric of ``calibrate evaluate`` for each group
of rows, from per-row values and a group index, in one pass (numpy only).

A group is a value of one group column, or a combination of values of several columns
(only combinations that occur). Everything is computed from four (n,) per-row values

  conf     top-label confidence max_j p_ij         correct  [argmax_j p_ij = y_i] (0/1)
  nll      -log p_{i, y_i}                          brier    sum_j (p_ij - [y_i = j])^2

and (n,) integer codes: the group g_i, the equal-width bin of conf_i, the equal-mass bin
of conf_i within its own group (each group's edges from its own confidences, as
:func:`calibrate.metrics.ece` with ``binning="mass"`` gives on that group's rows) and
within all rows. Per-group sums are ``np.bincount`` over (group, bin) codes g * B + b, in
float64, optionally weighted by a row weight w (a bootstrap resample): so the state of
every group is the state of :class:`calibrate._core.stats.Bins` / ``Accuracy`` / ``NLL`` /
``Brier`` over that group's rows, and the metrics are their ``finish``.

Metrics (:data:`GROUP_METRICS`): accuracy, ece (L1, equal width), ece_mass (L1, equal
mass), ece_l2, ece_l2_debiased (Kumar et al. 2019), mce (max), nll, brier,
overconfidence, underconfidence (:func:`calibrate.metrics.decomposition.ece_over_under`).
Not per group: classwise_ece and the Brier calibration/refinement split (O(k) bins a row),
aurc / augrc and smooth_ece (a sort or a kernel per group); they stay overall numbers.

Memory: the (n,) values and codes, and O(groups x bins) sums; never (n, resamples).
The bootstrap intervals around these numbers are in :mod:`calibrate.resampling.groups`.
"""

from __future__ import annotations

import numpy as np

from calibrate._core import binning as _binning
from calibrate._core.blocks import row_blocks
from calibrate._core.stats import NLL, Block, Brier, calibration_error, over_under_confidence
from calibrate._core.validation import InputError

#: per-group metrics, in this order on the last axis of every values array
GROUP_METRICS = ("accuracy", "ece", "ece_mass", "ece_l2", "ece_l2_debiased", "mce", "nll", "brier",
                 "overconfidence", "underconfidence")
#: metrics where a larger value is better (the worst group is the one with the smallest value)
HIGHER_IS_BETTER = frozenset({"accuracy"})
#: default minimum rows for a group to get an interval and to be a candidate for the worst group
MIN_COUNT = 30
KINDS = ("logits", "log_probs", "probs")


# ----------------------------------------------------------------------------- groups
def _column(name, values, n):
    a = np.asarray(values)
    if a.ndim != 1 or a.shape[0] != n:
        raise InputError(f"groups: column {name!r}: expected shape ({n},), got {a.shape}")
    if a.dtype == object:
        a = a.astype(str)
    return a


def group_codes(groups, n: int):
    """Group index of every row from one or several group columns.

    groups: one (n,) array (any dtype), a dict {name: (n,) array} or a list of (n,) arrays;
    the groups are the combinations of their values that occur (empty ones are absent).
    Returns (codes (n,) intp in 0..G-1, columns: tuple of names, labels: list of G tuples
    of column values as Python scalars), groups ordered by their values (column by column).
    """
    if isinstance(groups, dict):
        cols = [(str(k), v) for k, v in groups.items()]
    elif isinstance(groups, (list, tuple)):
        cols = [(f"group{j}", v) for j, v in enumerate(groups)]
    else:
        cols = [("group", groups)]
    if not cols:
        raise InputError("groups: expected at least one group column, got none")
    uniques, col_codes, codes = [], [], None
    for name, v in cols:
        u, inv = np.unique(_column(name, v, n), return_inverse=True)
        inv = inv.reshape(-1).astype(np.intp)
        uniques.append(u)
        col_codes.append(inv)
        if codes is None:
            codes = inv
        else:
            codes = codes.astype(np.int64) * u.size + inv
            _, codes = np.unique(codes, return_inverse=True)
            codes = codes.reshape(-1).astype(np.intp)
    n_groups = int(codes.max()) + 1 if n else 0
    first = np.full(n_groups, n, dtype=np.intp)
    np.minimum.at(first, codes, np.arange(n, dtype=np.intp))
    labels = []
    for g in range(n_groups):
        i = first[g]
        labels.append(tuple(u[c[i]].item() for u, c in zip(uniques, col_codes)))
    return codes, tuple(name for name, _ in cols), labels


def group_label(columns, label) -> str:
    """'col=value, col=value' of one group (the value alone for one unnamed column)."""
    if columns == ("group",):
        return str(label[0])
    return ", ".join(f"{c}={v}" for c, v in zip(columns, label))


# ----------------------------------------------------------------------------- rows
def row_values(x, labels: np.ndarray, kind: str = "logits", *, transform=None) -> np.ndarray:
    """(4, n) float64: conf, correct, nll, brier of every row (see the module docstring).

    x: (n, k) logits, log-probabilities (normalised with a log-softmax: exact NLL) or
    probabilities (kind "probs": NLL of probabilities clipped at the smallest float64),
    read in row blocks; or a callable f(slice) -> the (m, k) values of those rows (n from
    labels); labels: (n,) int. transform: optional f((m, k) logits) -> (m, k)
    log-probabilities applied to each block (a calibrator's ``predict_log_proba``).
    """
    if kind not in KINDS:
        raise InputError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if callable(x):
        n, get = labels.shape[0], x
        k = np.shape(get(slice(0, min(1, n))))[1]
    else:
        n, k = x.shape

        def get(s):
            return x[s]
    out = np.empty((4, n))
    nll_s, brier_s = NLL(), Brier()
    for sl in row_blocks(n, k):
        xb = get(sl) if transform is None else transform(get(sl))
        b = Block.from_logits(xb, labels[sl]) if kind != "probs" else Block(xb, labels[sl])
        conf, ok = b.top()
        out[0, sl] = conf
        out[1, sl] = ok
        out[2, sl] = nll_s.values(b)
        out[3, sl] = brier_s.values(b)
    return out


class GroupDesign:
    """(n,) codes of the rows and the per-group sums they give.

    values: (4, n) float64 from :func:`row_values` (or the same four (n,) arrays);
    codes: (n,) intp group index in 0..G-1; n_bins: B.
    """

    def __init__(self, values, codes, n_groups: int, n_bins: int = 15):
        self.conf, self.correct, self.nll, self.brier = (np.asarray(v, dtype=np.float64) for v in values)
        self.codes = np.asarray(codes, dtype=np.intp)
        self.n = self.codes.shape[0]
        self.nll_finite = bool(np.isfinite(self.nll).all())
        self.G, self.B = int(n_groups), int(n_bins)
        B = self.B
        self.code_width = self.codes * B + _binning.bin_index(self.conf, _binning.equal_width_edges(B))
        self.overall_mass_edges = _binning.equal_mass_edges(self.conf, B)
        self.code_overall_mass = _binning.bin_index(self.conf, self.overall_mass_edges)
        self.code_mass = np.empty(self.n, dtype=np.intp)
        order = np.lexsort((self.conf, self.codes))
        bounds = np.concatenate([[0], np.cumsum(np.bincount(self.codes, minlength=self.G))])
        for g in range(self.G):
            rows = order[bounds[g]:bounds[g + 1]]
            v = self.conf[rows]
            self.code_mass[rows] = g * B + _binning.bin_index(v, _binning.equal_mass_edges(v, B))
        del order

    def sums(self, w=None, mass: bool = True) -> dict:
        """Per-group float64 sums of the rows weighted by w ((n,) float, or None: each once).

        width, mass: (3, G, B) count / sum conf / sum correct per (group, bin);
        overall_mass: (3, B) the same in the equal-mass bins of all rows (both only with
        ``mass``: what ece_mass needs); nll, brier: (G,) sums.
        """
        G, B = self.G, self.B
        if w is None:
            w = np.ones(self.n)
        wc, wo = w * self.conf, w * self.correct
        out = {}
        sets = [("width", self.code_width, G * B)]
        if mass:
            sets += [("mass", self.code_mass, G * B), ("overall_mass", self.code_overall_mass, B)]
        for key, code, size in sets:
            out[key] = np.stack([np.bincount(code, weights=a, minlength=size) for a in (w, wc, wo)])
            if key != "overall_mass":
                out[key] = out[key].reshape(3, G, B)
        if self.nll_finite:
            wn = w * self.nll
        else:  # a row of weight 0 adds nothing, even with an infinite NLL (not 0 * inf = NaN)
            wn = np.zeros(self.n)
            np.multiply(w, self.nll, out=wn, where=w != 0)
        out["nll"] = np.bincount(self.codes, weights=wn, minlength=G)
        out["brier"] = np.bincount(self.codes, weights=w * self.brier, minlength=G)
        return out


def finish(s: dict, keys=GROUP_METRICS) -> tuple[np.ndarray, np.ndarray]:
    """(per-group (G, M), overall (M,)) values of the metrics ``keys`` (names of
    GROUP_METRICS, in that order on the last axis) from :meth:`GroupDesign.sums`.

    A group of zero weight gets NaN for the means (accuracy, nll, brier)."""
    width, mass = s["width"], s.get("mass")

    def metrics(wd, ms, nll_sum, brier_sum):
        cnt = wd[0].sum(axis=-1)
        out = []
        for key in keys:
            with np.errstate(invalid="ignore", divide="ignore"):
                if key == "accuracy":
                    v = wd[2].sum(axis=-1) / cnt
                elif key == "nll":
                    v = nll_sum / cnt
                elif key == "brier":
                    v = brier_sum / cnt
                elif key == "ece":
                    v = calibration_error(*wd, "l1")
                elif key == "ece_mass":
                    v = calibration_error(*ms, "l1")
                elif key == "ece_l2":
                    v = calibration_error(*wd, "l2")
                elif key == "ece_l2_debiased":
                    v = calibration_error(*wd, "l2", True)
                elif key == "mce":
                    v = calibration_error(*wd, "max")
                elif key == "overconfidence":
                    v = over_under_confidence(*wd)[0]
                elif key == "underconfidence":
                    v = over_under_confidence(*wd)[1]
                else:
                    raise InputError(f"keys: expected names of {', '.join(GROUP_METRICS)}, got {key!r}")
            out.append(v)
        return np.stack(out, axis=-1)

    per_group = metrics(width, mass, s["nll"], s["brier"])
    overall = metrics(width.sum(axis=1), s.get("overall_mass"), s["nll"].sum(), s["brier"].sum())
    return per_group, overall


def group_point_metrics(x, labels, groups, *, kind: str = "logits", n_bins: int = 15) -> dict:
    """Per-group metric values without intervals: {"columns", "labels", "counts" (G,),
    "values" (G, M), "overall" (M,), "metrics": GROUP_METRICS} (x (n, k), labels (n,))."""
    x = np.asarray(x)
    y = np.asarray(labels)
    codes, columns, glabels = group_codes(groups, x.shape[0])
    d = GroupDesign(row_values(x, y, kind), codes, len(glabels), n_bins)
    s = d.sums()
    values, overall = finish(s)
    return {"columns": columns, "labels": glabels, "counts": s["width"][0].sum(axis=-1).astype(np.int64),
            "values": values, "overall": overall, "metrics": GROUP_METRICS}
