"""Streaming metrics: update in batches, merge across workers, compute at the end.

The state is a handful of float64 sums, O(bins x classes), whatever the number of rows:
per-bin (count, sum of confidence, sum of correct) for the top-label bins and for each
class's bins, plus running sums of the NLL, the Brier score and the number correct.
Sums are associative, so ``merge`` in any order, and any split of the data into
batches, gives the one-shot result up to float64 rounding (1e-12 relative is tested).
torchmetrics and TorchUncertainty keep every confidence instead, so their memory grows
with the data.

Equal-mass bins are not streamed: their edges are quantiles of the whole data, unknown
until the end. Two passes do it exactly: pass 1 computes the edges (from the data, or
from a mergeable quantile sketch if the data only streams), pass 2 accumulates with
``edges=`` fixed. Any fixed edges can be given; the bin rule is the package's one rule.

Across processes: ``state_dict()`` is a dict of float64 arrays; sum them with any
all-reduce (``all_reduce_torch`` does it with torch.distributed), or ``merge`` objects.
"""

from __future__ import annotations

import numpy as np

from . import _binning
from ._blocks import is_dask, log_softmax64, row_blocks
from ._validation import InputError, check_labels, check_n_bins, check_scores
from .metrics import _brier_terms, _group_errors, _nll_terms, _top_label, classwise_sums

_KEYS = ("count", "conf", "correct", "cw_count", "cw_conf", "cw_correct", "totals")


class CalibrationAccumulator:
    """Accumulates top-label and class-wise bins, NLL, Brier and accuracy.

    n_classes: k; n_bins: equal-width bins (or ``edges``: (B + 1,) increasing from 0 to 1).
    """

    def __init__(self, n_classes: int, n_bins: int = 15, *, edges=None, classwise: bool = True):
        if edges is None:
            edges = _binning.equal_width_edges(check_n_bins(n_bins))
        edges = np.asarray(edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or edges[0] != 0 or edges[-1] != 1 or np.any(np.diff(edges) < 0):
            raise InputError("edges: expected an increasing 1-d array from 0 to 1")
        self.n_classes = int(n_classes)
        self.edges = edges
        self.classwise = classwise
        b = edges.size - 1
        k = self.n_classes if classwise else 0
        self.count, self.conf, self.correct = np.zeros(b), np.zeros(b), np.zeros(b)
        self.cw_count, self.cw_conf, self.cw_correct = np.zeros((k, b)), np.zeros((k, b)), np.zeros((k, b))
        self.totals = np.zeros(4)  # n, sum NLL, sum Brier, n correct

    @property
    def n_bins(self) -> int:
        return self.edges.size - 1

    def update(self, probs=None, labels=None, *, logits=None):
        """Add a batch: ``probs`` (n, k) or ``logits`` (n, k) (exact NLL), and labels (n,).

        A batch of any size is processed in row blocks (bounded memory; a memory-mapped
        array is read block by block). A dask array is reduced on its cluster, one task
        per chunk of rows (:mod:`calibrate._dask`).
        """
        if (probs is None) == (logits is None):
            raise InputError("update: give exactly one of probs or logits")
        x = probs if logits is None else logits
        if is_dask(x) or is_dask(labels):
            from ._dask import accumulate

            return self.merge(accumulate(self, x, labels, kind="probs" if logits is None else "logits"))
        kind = "logits" if logits is not None else "probs"
        arr = check_scores(x, kind, kind=kind)
        if arr.shape[1] != self.n_classes:
            raise InputError(f"{kind}: expected {self.n_classes} classes, got {arr.shape[1]}")
        y = check_labels(labels, arr.shape[0], self.n_classes)
        for s in row_blocks(*arr.shape):
            self._update_block(arr[s], y[s], kind)
        return self

    def _update_block(self, x, y, kind):
        if kind == "logits":
            lp = log_softmax64(x)
            p = np.exp(lp)
        else:
            p, lp = x, None
        conf, ok = _top_label(p, y)
        b = self.n_bins
        count, s_conf, s_corr = _binning.bin_sums(_binning.bin_index(conf, self.edges), conf, ok, b)
        self.count += count
        self.conf += s_conf
        self.correct += s_corr
        if self.classwise:
            count, s_conf, s_corr = classwise_sums(p, y, b, "width", edges=self.edges)
            self.cw_count += count
            self.cw_conf += s_conf
            self.cw_correct += s_corr
        self.totals += [p.shape[0], _nll_terms(p, y, lp).sum(), _brier_terms(p, y).sum(), ok.sum()]

    def merge(self, other: CalibrationAccumulator):
        """Add another accumulator's sums (same classes and edges). Returns self."""
        if other.n_classes != self.n_classes or not np.array_equal(other.edges, self.edges) \
                or other.classwise != self.classwise:
            raise InputError("merge: accumulators differ in classes, edges or classwise")
        for key in _KEYS:
            setattr(self, key, getattr(self, key) + getattr(other, key))
        return self

    def state_dict(self) -> dict:
        return {key: getattr(self, key).copy() for key in _KEYS}

    def load_state_dict(self, state: dict):
        for key in _KEYS:
            setattr(self, key, np.asarray(state[key], dtype=np.float64).reshape(getattr(self, key).shape))
        return self

    def compute(self) -> dict:
        """The metrics of everything seen so far, as floats."""
        n = self.totals[0]
        if n == 0:
            raise InputError("compute: no data has been added")
        s = (self.count[None], self.conf[None], self.correct[None])
        out = {
            "n": int(n),
            "accuracy": float(self.totals[3] / n),
            "ece": float(_group_errors(*s, "l1", False)[0]),
            "ece_l2": float(_group_errors(*s, "l2", False)[0]),
            "ece_l2_debiased": float(_group_errors(*s, "l2", True)[0]),
            "mce": float(_group_errors(*s, "max", False)[0]),
            "nll": float(self.totals[1] / n),
            "brier": float(self.totals[2] / n),
        }
        if self.classwise:
            out["classwise_ece"] = float(_group_errors(self.cw_count, self.cw_conf, self.cw_correct, "l1", False).mean())
        return out

    def all_reduce_torch(self, group=None):
        """Sum the state over all processes of a torch.distributed group, in place (float64)."""
        import torch
        import torch.distributed as dist

        for key in _KEYS:
            t = torch.from_numpy(np.ascontiguousarray(getattr(self, key)))
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
            setattr(self, key, t.numpy())
        return self


def evaluate_in_blocks(logits, labels, n_bins: int = 15, *, transform=None, rows_elements: int = 1 << 20,
                       return_state: bool = False, classwise: bool = True) -> dict:
    """Every metric of :func:`calibrate.metrics.all_metrics` from (n, k) logits, in row blocks.

    logits: (n, k) float, possibly memory-mapped (read one block at a time); labels: (n,) int.
    transform: optional f(logits block) -> log-probabilities block (a calibrator's
    ``predict_log_proba``), applied block by block. Memory: the (n,) top-label confidences
    (for the equal-mass ECE) plus one block; the NLL is exact from the log-probabilities.
    return_state: give (the metrics, the accumulator, confidences (n,), correct (n,))
    instead, for :func:`calibrate.summary.summary_in_blocks`. classwise=False: no class-wise
    bin sums (O(n k) work) and no "classwise_ece" key.
    """
    from ._blocks import row_blocks as _rb
    from .metrics import ece_from_confidences

    z = check_scores(logits, "logits", kind="logits")
    n, k = z.shape
    y = check_labels(labels, n, k)
    acc = CalibrationAccumulator(k, n_bins, classwise=classwise)
    conf, ok = np.empty(n), np.empty(n, dtype=np.int64)
    for s in _rb(n, k, rows_elements):
        zb = z[s] if transform is None else transform(z[s])
        lp = log_softmax64(zb)
        c, o = _top_label(np.exp(lp), y[s])
        conf[s], ok[s] = c, o
        acc._update_block(lp, y[s], "logits")
    out = acc.compute()
    res = {key: out[key] for key in ("accuracy", "ece")}
    res["ece_mass"] = ece_from_confidences(conf, ok, n_bins, binning="mass")
    res.update({key: out[key] for key in ("ece_l2", "ece_l2_debiased", "mce", "classwise_ece", "nll", "brier")
                if key in out})
    if return_state:
        return res, acc, conf, ok
    return res
