"""What the report needs of one prediction, from ONE pass over its rows in blocks.

A :class:`Digest` holds, for n rows of a k-class prediction, only per-row values and
per-(class, bin) sums, never the (n, k) probabilities:

- per row (n,): the top-label confidence max_j p_ij, the predicted class (the first
  arg-max), its correctness, the NLL term -log p_{i, y_i}, the Brier term
  sum_j (p_ij - [y_i = j])^2 and the true-class probability p_{i, y_i};
- the states of :mod:`calibrate._core.stats` (Accuracy, NLL, Brier, top-label Bins with
  equal-width edges) added block by block, so every plug-in metric is theirs;
- per (class, bin), the sums of :func:`calibrate.report.classes.class_numbers` (count,
  sum of p, sum of hits, sum of p^2, sum of p x hit): the per-class ECE, the class-wise
  ECE, the per-class mean probability and Murphy's Brier decomposition;
- the (n, c) probability columns of the c classes the per-class section shows (every
  class up to BOOTSTRAP_CLASSWISE_MAX_K, where the metrics table resamples the class-wise
  ECE; else those chosen by :func:`calibrate.report.classes.select_classes`).

Working memory: O(n + k B) per prediction plus one block of O(rows x k) values, the
block at least ``MIN_BLOCK_BIN_ROWS x B`` rows so that the O(k B) work of a block's bin
sums is spread over rows. Every section of the report reads digests:
:func:`report_digests` makes them (the uncalibrated one first, whose per-class ECE
chooses the classes; its columns are then read back from the logits with its saved
row normaliser, bit for bit the values of its log-softmax).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibrate._core import binning as _binning
from calibrate._core import stats as _stats
from calibrate._core.blocks import BLOCK_BYTES, block_rows, log_softmax64
from calibrate.report.classes import (
    ALL_CLASSES_MAX_K,
    BOOTSTRAP_CLASSWISE_MAX_K,
    add_class_sums,
    class_ece_intervals,
    class_numbers_from_sums,
    select_classes,
)

MIN_BLOCK_BIN_ROWS = 4  # a block holds at least this many rows per bin (see the module docstring)
_TOP_STATS = ("accuracy", "nll", "brier", "bins")


def digest_rows(n: int, k: int, n_bins: int) -> int:
    """Rows per block of the digest pass: the package's block (``block_rows(k)``), at least
    MIN_BLOCK_BIN_ROWS * n_bins rows."""
    return max(block_rows(k, 8, BLOCK_BYTES), MIN_BLOCK_BIN_ROWS * int(n_bins), 1)


def _slices(n: int, rows: int):
    for a in range(0, n, rows):
        yield slice(a, min(n, a + rows))


@dataclass
class Digest:
    """One prediction of n rows and k classes, summarised (see the module docstring).

    confidence, nll, brier, p_true: (n,) float64; predicted: (n,) intp; correct: (n,) bool;
    states: {"accuracy", "nll", "brier", "bins"} float64 states of :mod:`calibrate._core.stats`
    (bins: equal-width top-label Bins of n_bins); class_sums: (5, k * n_bins) float64 count,
    sum p, sum hit, sum p^2, sum p hit per (class, bin) (class-major); classes: (c,) the
    classes of ``columns`` (n, c) float64 probabilities (c may be 0); shift, log_norm: (n,)
    the row maximum of the input and log sum_j exp(z_ij - shift_i) (kept for logits whose
    columns are read back later, else None).
    """

    n: int
    k: int
    n_bins: int
    confidence: np.ndarray
    predicted: np.ndarray
    correct: np.ndarray
    nll: np.ndarray
    brier: np.ndarray
    p_true: np.ndarray
    states: dict
    class_sums: np.ndarray
    classes: np.ndarray
    columns: np.ndarray
    shift: np.ndarray | None = None
    log_norm: np.ndarray | None = None

    # ------------------------------------------------------------------ metrics
    def estimates(self, classwise_ece: float) -> dict:
        """The plug-in value of every metric of calibrate.resampling.tables.METRIC_KEYS (the
        definitions of calibrate.metrics.all_metrics; NLL exact from the log-softmax)."""
        b = _stats.Bins(_binning.equal_width_edges(self.n_bins))
        st = self.states["bins"]
        mass_stat, mass_state = _binned_mass(self.confidence, self.correct, self.n_bins)
        return {"accuracy": float(_stats.Accuracy().finish(self.states["accuracy"])),
                "ece": float(b.finish(st)), "ece_mass": float(mass_stat.finish(mass_state)),
                "ece_l2": float(b.finish(st, "l2")), "ece_l2_debiased": float(b.finish(st, "l2", True)),
                "mce": float(b.finish(st, "max")), "classwise_ece": float(classwise_ece),
                "nll": float(_stats.NLL().finish(self.states["nll"])),
                "brier": float(_stats.Brier().finish(self.states["brier"]))}

    def class_numbers(self, labels) -> dict:
        """The dict of :func:`calibrate.report.classes.class_numbers` from the class sums."""
        return class_numbers_from_sums(self.class_sums, labels, self.n_bins)

    def over_under(self) -> dict:
        """:func:`calibrate.metrics.decomposition.ece_over_under` (equal-width bins) of the rows."""
        over, under = (float(v) for v in
                       _stats.Bins(_binning.equal_width_edges(self.n_bins)).over_under(self.states["bins"]))
        return {"ece": over + under, "overconfidence": over, "underconfidence": under}

    def decomposition(self, class_decomposition: dict, brier: float) -> dict:
        """The entry of :func:`calibrate.report.beyond.decomposition_numbers` of this prediction:
        ``class_decomposition`` (:meth:`class_numbers` ["decomposition"]), the Brier score and
        the over/under split of the top-label ECE."""
        ou = self.over_under()
        bd = {"brier": float(brier), **class_decomposition}
        return {**bd, "brier_calibration": bd["reliability"], "brier_refinement": bd["brier"] - bd["reliability"],
                "overconfidence": ou["overconfidence"], "underconfidence": ou["underconfidence"]}

    def top_label(self):
        """(confidence (n,) float64, correct (n,) bool)."""
        return self.confidence, self.correct

    def reliability_data(self, n_bins: int | None = None, label: str = ""):
        """:func:`calibrate.report.figures.reliability_data` (top-label, equal-width) of the rows."""
        from calibrate.metrics import calibration as metrics
        from calibrate.report.figures import ReliabilityData

        stat, state = metrics.binned_state(self.confidence, self.correct, n_bins or self.n_bins, "width")
        count, s_conf, s_corr = stat.sums(state)
        with np.errstate(invalid="ignore", divide="ignore"):
            conf, acc = s_conf / count, s_corr / count
        e = float(stat.finish(state))
        return ReliabilityData(stat.edges, count.astype(np.int64), conf, acc, e, int(count.sum()), label)

    # ------------------------------------------------------------------ columns
    def positions(self, classes) -> np.ndarray:
        """(c,) the positions in ``columns`` of the given classes (each must be held)."""
        where = {int(j): i for i, j in enumerate(self.classes)}
        try:
            return np.array([where[int(j)] for j in classes], dtype=np.intp)
        except KeyError as e:
            raise ValueError(f"classes: class {e.args[0]} is not among the digest's columns") from None

    def mapped_labels(self, labels) -> np.ndarray:
        """(n,) the position in ``columns`` of each row's label, -1 for a class not held."""
        lut = np.full(self.k, -1, dtype=np.intp)
        lut[self.classes] = np.arange(self.classes.size)
        return lut[np.asarray(labels)]

    def source(self):
        """This digest as a source of :func:`calibrate.resampling.bootstrap.bootstrap_many`."""
        return _DigestSource(self)


def _binned_mass(confidence, correct, n_bins):
    from calibrate.metrics import calibration as metrics

    return metrics.binned_state(confidence, correct, n_bins, "mass")


class _DigestSource:
    """A :class:`Digest` read in row blocks by the bootstrap: each block's rows' values, and
    the probability columns when every class is held (the class-wise statistics)."""

    def __init__(self, d: Digest):
        self.d, self.n, self.k = d, d.n, d.k

    def _probs(self, s):
        d = self.d
        if d.classes.size != d.k:
            return None
        return d.columns[s]

    def block(self, s):
        p = self._probs(s)
        if p is None:
            raise ValueError("the digest holds the columns of some classes only: class-wise statistics need all")
        return p, None

    def stats_block(self, s, labels):
        d = self.d
        return _stats.Block.from_rows(labels, d.confidence[s], d.correct[s], d.nll[s], d.brier[s], self._probs(s))


# ------------------------------------------------------------------ the pass
def digest(predictions, labels, n_bins: int = 15, *, classes=None, keep_normalizer: bool = False,
           log_probs: bool = False, n: int | None = None, k: int | None = None) -> Digest:
    """The :class:`Digest` of one prediction, in ONE pass over its rows in blocks.

    predictions: (n, k) logits or log-probabilities (a numpy array or memmap, read block by
    block, never converted whole), or f(slice) -> those rows' (m, k) values (a calibrator's
    ``predict_log_proba`` of the rows' logits; give n and k); each block is normalised by a
    float64 log-softmax, unless ``log_probs`` says the values are log-probabilities already
    (a calibrator's: taken as they are, p = exp, so that ties it makes stay ties). labels:
    (n,) int. classes: the classes whose (n, c) probability
    columns are kept (None: none; "all": every class). keep_normalizer: keep each row's
    maximum and log-normaliser (to read columns back later: :func:`add_columns`).
    """
    y = np.asarray(labels)
    fn = predictions if callable(predictions) else (lambda s, a=predictions: a[s])
    if n is None or k is None:
        n, k = np.shape(predictions)
    n, k, nb = int(n), int(k), int(n_bins)
    cls = np.arange(k) if isinstance(classes, str) and classes == "all" else np.asarray(
        [] if classes is None else classes, dtype=np.intp)
    edges = _binning.equal_width_edges(nb)
    stats = {"accuracy": _stats.Accuracy(), "nll": _stats.NLL(), "brier": _stats.Brier(), "bins": _stats.Bins(edges)}
    states = {key: stats[key].zeros() for key in _TOP_STATS}
    size = k * nb
    sums = np.zeros((5, size))
    offset = np.arange(k) * nb
    conf, nll, brier, p_true = (np.empty(n) for _ in range(4))
    pred = np.empty(n, dtype=np.intp)
    correct = np.empty(n, dtype=bool)
    columns = np.empty((n, cls.size))
    shift = np.empty(n) if keep_normalizer else None
    log_norm = np.empty(n) if keep_normalizer else None
    for s in _slices(n, digest_rows(n, k, nb)):
        zb = np.asarray(fn(s), dtype=np.float64)
        lb = zb if log_probs else log_softmax64(zb)
        pb = np.exp(lb)
        yb = y[s]
        m = yb.shape[0]
        ar = np.arange(m)
        block = _stats.Block(pb, yb, lb)
        for key in _TOP_STATS:
            stats[key].update(states[key], block)
        conf[s], correct[s] = block.top()
        pred[s] = pb.argmax(axis=1)
        nll[s] = stats["nll"].values(block)
        brier[s] = stats["brier"].values(block)
        p_true[s] = pb[ar, yb]
        if cls.size:
            columns[s] = pb[:, cls]
        if keep_normalizer:
            mx = zb.max(axis=1)
            shift[s] = np.where(np.isfinite(mx), mx, 0.0)
            log_norm[s] = -lb.max(axis=1)
        add_class_sums(sums, pb, yb, edges, offset)
    return Digest(n, k, nb, conf, pred, correct, nll, brier, p_true, states, sums, cls, columns, shift, log_norm)


def add_columns(d: Digest, logits, classes) -> Digest:
    """``d`` with the probability columns of ``classes`` added, read back from the (n, k)
    logits it was made from (its saved row normaliser: p_ij = exp((z_ij - shift_i) -
    log_norm_i), the operations of the log-softmax, so the same bits). Only the c columns
    are read, in row blocks."""
    if d.shift is None:
        raise ValueError("add_columns: the digest was made without keep_normalizer=True")
    new = np.asarray([j for j in np.asarray(classes, dtype=np.intp) if j not in set(d.classes.tolist())],
                     dtype=np.intp)
    if new.size == 0:
        return d
    cols = np.empty((d.n, new.size))
    for s in _slices(d.n, block_rows(new.size, 8, BLOCK_BYTES)):
        zb = np.asarray(logits[s][:, new], dtype=np.float64)
        np.exp((zb - d.shift[s, None]) - d.log_norm[s, None], out=cols[s])
    d.classes = np.concatenate([d.classes, new])
    d.columns = np.concatenate([d.columns, cols], axis=1) if d.columns.size else cols
    return d


def report_digests(test_logits, labels, calibrators: dict, n_bins: int = 15, *, classes: str = "auto"):
    """The digests of the report: {"uncalibrated": ..., name: ...} (``calibrators``: {name:
    fitted Calibrator}), and the classes held as columns.

    Columns: every class when classes is "all" or k <= BOOTSTRAP_CLASSWISE_MAX_K (the
    metrics table resamples the class-wise ECE, the per-class section draws every class up
    to ALL_CLASSES_MAX_K); else the classes of :func:`select_classes` on the uncalibrated
    per-class ECE, whose uncalibrated columns are read back with :func:`add_columns`.
    Returns (digests, select) where select is select_classes' dict or None (all held).
    """
    y = np.asarray(labels)
    n, k = np.shape(test_logits)
    every = classes == "all" or k <= max(BOOTSTRAP_CLASSWISE_MAX_K, ALL_CLASSES_MAX_K)
    out = {"uncalibrated": digest(test_logits, y, n_bins, classes="all" if every else None,
                                  keep_normalizer=not every)}
    sel = None
    shown = "all"
    if not every:
        cn = out["uncalibrated"].class_numbers(y)
        sel = select_classes(cn["ece"], cn["support"])
        shown = sel["shown"]
        add_columns(out["uncalibrated"], test_logits, shown)
    for name, cal in calibrators.items():
        out[name] = digest(lambda s, c=cal: c.predict_log_proba(test_logits[s], kind="logits"), y, n_bins,
                           classes=shown, log_probs=True, n=n, k=k)
    return out, sel


# ------------------------------------------------------------------ class sections
def class_intervals(d: Digest, labels, classes, n_bins: int = 15, n_resamples: int = 1000, seed: int = 0,
                    scheme: str = "auto") -> dict:
    """:func:`calibrate.report.classes.class_ece_intervals` of the listed classes from the
    digest's columns: {class: {"estimate", "low", "high", "confidence"}}."""
    pos = d.positions(classes)
    iv = class_ece_intervals(d.columns, d.mapped_labels(labels), pos, n_bins, n_resamples, seed=seed,
                             scheme=scheme)
    return {int(d.classes[i]): v for i, v in iv.items()}


def classwise_figure(d: Digest, labels, class_names=None, n_bins: int = 10, *, ncols: int = 5,
                     panel_size: float = 2.6, suptitle: str | None = None, classes=None):
    """:func:`calibrate.report.figures.classwise_reliability_figure` from the digest's columns
    (classes: the classes to draw, in order; default every class held)."""

    from calibrate.report.figures import _class_reliability, reliability_panels

    shown = [int(j) for j in (d.classes if classes is None else classes)]
    pos = d.positions(shown)
    ym = d.mapped_labels(labels)
    names = list(class_names) if class_names is not None else [str(j) for j in range(d.k)]
    panels = []
    for j, q in zip(shown, pos):
        data = _class_reliability(d.columns, ym, int(q), n_bins, "width", names[j])
        data.xlabel = f"P(class {j})"
        panels.append(data)
    return reliability_panels(panels, ncols=ncols, panel_size=panel_size, suptitle=suptitle)


# ------------------------------------------------------------------ conformal sets
CONFORMAL_BLOCK_BYTES = 8 * BLOCK_BYTES  # one (m, k) working copy of the sets' scores (APS holds about 8)


def conformal_in_blocks(cal_lp, cal_y, eval_lp, eval_y, alpha: float, seed: int = 0, *, k: int) -> dict:
    """:func:`calibrate.report.beyond.conformal_numbers` in row blocks: LAC and APS
    (randomised, ``seed``) calibrated on the rows of ``cal_lp`` and measured on those of
    ``eval_lp``, each f(slice) -> those rows' (m, k) log-probabilities (or logits). The same
    numbers as fitting :class:`calibrate.conformal.LAC` / :class:`~calibrate.conformal.APS`
    on the whole arrays (the same scores, the same uniform draws in row order), holding per
    row only the true-class score, the set size and whether the set covers the label.
    """
    from calibrate import conformal

    cal_y, eval_y = np.asarray(cal_y), np.asarray(eval_y)
    n_cal, n_eval = cal_y.shape[0], eval_y.shape[0]
    rows = block_rows(k, 8, CONFORMAL_BLOCK_BYTES)
    out = {}
    for key, cp in (("lac", conformal.LAC(alpha=alpha)), ("aps", conformal.APS(alpha=alpha, seed=seed))):
        a = conformal._check_alpha(cp.alpha)
        cp._check_params()
        given = getattr(cp, "seed", None)
        cp.seed_ = int(given) if given is not None else 0
        fit_stream, predict_stream = cp._streams()
        rng = np.random.default_rng(fit_stream)
        true_scores = np.empty(n_cal)
        for s in _slices(n_cal, rows):
            p = np.exp(log_softmax64(cal_lp(s)))
            u = rng.random(p.shape[0]) if cp._uses_u() else None
            sc = cp._all_scores(p, u)
            true_scores[s] = sc[np.arange(p.shape[0]), cal_y[s]]
        q = conformal.conformal_quantile(true_scores, a)
        rng = np.random.default_rng(predict_stream)
        size = np.empty(n_eval, dtype=np.int64)
        hit = np.empty(n_eval, dtype=bool)
        for s in _slices(n_eval, rows):
            p = np.exp(log_softmax64(eval_lp(s)))
            u = rng.random(p.shape[0]) if cp._uses_u() else None
            sets = cp._all_scores(p, u) <= q
            size[s] = sets.sum(axis=1, dtype=np.int64)
            hit[s] = sets[np.arange(p.shape[0]), eval_y[s]]
        out[key] = {"coverage": float(np.mean(hit)), "mean_set_size": float(size.mean()),
                    "worst_class_coverage": _worst_class_coverage(hit, eval_y, k),
                    **_size_numbers(size, hit, n_eval), "quantile": float(q)}
    return out


def _worst_class_coverage(hit, y, k) -> float:
    """:func:`calibrate.conformal.class_conditional_coverage` ["worst"] from each row's hit."""
    count = np.bincount(y, minlength=k)
    cov_sum = np.bincount(y, weights=hit.astype(np.float64), minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(count > 0, cov_sum / np.maximum(count, 1), np.nan)
    return float(np.nanmin(per))


def _size_numbers(size, hit, n) -> dict:
    """calibrate.report.beyond._size_numbers from each row's set size and hit: the fraction
    of empty sets and the worst coverage over the non-empty sizes
    (:func:`calibrate.conformal.size_stratified_coverage`)."""
    sizes, inv = np.unique(size, return_inverse=True)
    count = np.bincount(inv)
    cov = np.bincount(inv, weights=hit.astype(np.float64)) / count
    keep = sizes > 0
    return {"empty_fraction": int(count[~keep].sum()) / n,
            "worst_size_coverage": float(cov[keep].min()) if keep.any() else float("nan")}


def calibrated_rows(calibrator, logits, index=None):
    """f(slice) -> the (m, k) log-probabilities of rows ``index[slice]`` (all rows in order
    when index is None) of the (n, k) logits: the calibrator's, or the log-softmax when
    calibrator is None. The rows are read only when asked."""
    def rows(s):
        zb = logits[s] if index is None else logits[index[s]]
        if calibrator is None:
            return log_softmax64(zb)
        return calibrator.predict_log_proba(zb, kind="logits")
    return rows
