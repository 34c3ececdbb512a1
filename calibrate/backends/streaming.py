"""Streaming metrics: update in batches, merge across workers, compute at the end.

The state is the float64 states of a few statistics of :mod:`calibrate._core.stats`,
O(bins x classes), whatever the number of rows: top-label bins (count, sum of
confidence, sum of correct per bin), each class's bins, and the NLL, Brier and accuracy
sums. Sums are associative, so ``merge`` in any order, and any split of the data into
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

from calibrate._core import binning as _binning
from calibrate._core import dispatch as _dispatch
from calibrate._core import stats as _stats
from calibrate._core.blocks import row_blocks
from calibrate._core.validation import (
    InputError,
    check_gold_finite,
    check_labels,
    check_n_bins,
    check_scores,
)


class CalibrationAccumulator:
    """Accumulates top-label and class-wise bins, NLL, Brier and accuracy.

    n_classes: k; n_bins: equal-width bins (or ``edges``: (B + 1,) increasing from 0 to 1).
    ``states``: {name: float64 state} of the statistics ``stats`` (top, classwise, nll,
    brier, accuracy; no classwise when ``classwise`` is False). decomposition=True: the
    class-wise bins also keep the sums of Murphy's Brier decomposition (state "brier_bins",
    a :class:`calibrate._core.stats.ClasswiseBrierBins`, in place of "classwise") for
    :meth:`brier_decomposition`; :meth:`ece_over_under` needs no extra state.
    """

    def __init__(self, n_classes: int, n_bins: int = 15, *, edges=None, classwise: bool = True,
                 decomposition: bool = False):
        if edges is None:
            edges = _binning.equal_width_edges(check_n_bins(n_bins))
        edges = np.asarray(edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or edges[0] != 0 or edges[-1] != 1 or np.any(np.diff(edges) < 0):
            raise InputError("edges: expected an increasing 1-d array from 0 to 1")
        self.n_classes = int(n_classes)
        self.edges = edges
        self.classwise = classwise
        self.decomposition = decomposition
        self.stats = {"top": _stats.Bins(edges), "nll": _stats.NLL(), "brier": _stats.Brier(),
                      "accuracy": _stats.Accuracy()}
        if decomposition:
            self.stats["brier_bins"] = _stats.ClasswiseBrierBins(self.n_classes, edges)
        elif classwise:
            self.stats["classwise"] = _stats.ClasswiseBins(self.n_classes, edges)
        self.states = {key: s.zeros() for key, s in self.stats.items()}

    @property
    def n_bins(self) -> int:
        return self.edges.size - 1

    def update(self, probs=None, labels=None, *, logits=None):
        """Add a batch: ``probs`` (n, k) or ``logits`` (n, k) (exact NLL), and labels (n,).

        A -inf logit is an absent option (probability 0); a row whose label's logit is
        -inf is refused (InputError naming the rows).

        A batch of any size is processed in row blocks (bounded memory; a memory-mapped
        array is read block by block); a dask array is reduced on its cluster, one task
        per chunk of rows (see :mod:`calibrate._core.dispatch`).
        """
        if (probs is None) == (logits is None):
            raise InputError("update: give exactly one of probs or logits")
        kind = "probs" if logits is None else "logits"
        x = probs if logits is None else logits
        if _dispatch.backend_of(x, labels) is None:
            x = check_scores(x, kind, kind=kind)
            if x.shape[1] != self.n_classes:
                raise InputError(f"{kind}: expected {self.n_classes} classes, got {x.shape[1]}")
            labels = check_labels(labels, x.shape[0], self.n_classes)
            if kind == "logits":
                check_gold_finite(x, labels)
        elif x.shape[1] != self.n_classes:
            raise InputError(f"{kind}: expected {self.n_classes} classes, got {x.shape[1]}")
        keys = list(self.stats)
        for key, state in zip(keys, _dispatch.reduce([self.stats[k] for k in keys], x, labels, kind)):
            self.states[key] += state
        return self

    def update_block(self, block: _stats.Block):
        """Add one validated :class:`calibrate._core.stats.Block` of rows."""
        for key, stat in self.stats.items():
            stat.update(self.states[key], block)
        return self

    def merge(self, other: CalibrationAccumulator):
        """Add another accumulator's sums (same classes and edges). Returns self."""
        if other.n_classes != self.n_classes or not np.array_equal(other.edges, self.edges) \
                or other.classwise != self.classwise or other.decomposition != self.decomposition:
            raise InputError("merge: accumulators differ in classes, edges, classwise or decomposition")
        for key in self.states:
            self.states[key] = _stats.merge(self.states[key], other.states[key])
        return self

    def state_dict(self) -> dict:
        return {key: v.copy() for key, v in self.states.items()}

    def load_state_dict(self, state: dict):
        for key, v in self.states.items():
            self.states[key] = np.asarray(state[key], dtype=np.float64).reshape(v.shape)
        return self

    def _rows(self, name: str) -> float:
        n = self.states["nll"][0]
        if n == 0:
            raise InputError(f"{name}: no data has been added")
        return n

    def compute(self) -> dict:
        """The metrics of everything seen so far, as floats."""
        n = self._rows("compute")
        top, s = self.stats["top"], self.states["top"]
        out = {
            "n": int(n),
            "accuracy": float(self.stats["accuracy"].finish(self.states["accuracy"])),
            "ece": float(top.finish(s, "l1")),
            "ece_l2": float(top.finish(s, "l2")),
            "ece_l2_debiased": float(top.finish(s, "l2", debiased=True)),
            "mce": float(top.finish(s, "max")),
            "nll": float(self.stats["nll"].finish(self.states["nll"])),
            "brier": float(self.stats["brier"].finish(self.states["brier"])),
        }
        if self.classwise:
            if self.decomposition:
                bb = self.stats["brier_bins"]
                out["classwise_ece"] = float(bb.bins.finish(self.states["brier_bins"][:bb.bins.size], "l1"))
            else:
                out["classwise_ece"] = float(self.stats["classwise"].finish(self.states["classwise"], "l1"))
        return out

    def ece_over_under(self) -> dict:
        """:func:`calibrate.metrics.decomposition.ece_over_under` of everything seen so far
        (these edges): dict(ece, overconfidence, underconfidence), floats."""
        self._rows("ece_over_under")
        over, under = (float(v) for v in self.stats["top"].over_under(self.states["top"]))
        return {"ece": over + under, "overconfidence": over, "underconfidence": under}

    def brier_decomposition(self) -> dict:
        """:func:`calibrate.metrics.decomposition.brier_decomposition` of everything seen so
        far (each class binned on these edges): a dict of floats. Needs decomposition=True."""
        self._rows("brier_decomposition")
        if not self.decomposition:
            raise InputError("brier_decomposition: create the accumulator with decomposition=True")
        out = {key: float(v) for key, v in self.stats["brier_bins"].finish(self.states["brier_bins"]).items()}
        out["brier"] = float(self.stats["brier"].finish(self.states["brier"]))
        return out

    def all_reduce_torch(self, group=None):
        """Sum the state over all processes of a torch.distributed group, in place (float64)."""
        import torch
        import torch.distributed as dist

        for key in self.states:
            t = torch.from_numpy(np.ascontiguousarray(self.states[key]))
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
            self.states[key] = t.numpy()
        return self


def evaluate_in_blocks(logits, labels, n_bins: int = 15, *, transform=None, block_bytes: int | None = None,
                       return_state: bool = False, classwise: bool = True) -> dict:
    """Every metric of :func:`calibrate.metrics.all_metrics` from (n, k) logits, in row blocks.

    logits: (n, k) float, possibly memory-mapped (read one block at a time); labels: (n,) int.
    transform: optional f(logits block) -> log-probabilities block (a calibrator's
    ``predict_log_proba``), applied block by block. Memory: the (n,) top-label confidences
    (for the equal-mass ECE) plus one block; the NLL is exact from the log-probabilities.
    block_bytes: bytes of one float64 working copy of a block (default: 16 blocks of the
    package's policy, as a calibrator's transform has a per-call cost).
    return_state: give (the metrics, the accumulator, confidences (n,), correct (n,))
    instead, for :func:`calibrate.metrics.summary.summary_in_blocks`. classwise=False: no
    class-wise bin sums (O(n k) work) and no "classwise_ece" key.
    """
    from calibrate._core.blocks import BLOCK_BYTES

    z = check_scores(logits, "logits", kind="logits")
    n, k = z.shape
    y = check_labels(labels, n, k)
    check_gold_finite(z, y)
    acc = CalibrationAccumulator(k, n_bins, classwise=classwise)
    conf, ok = np.empty(n), np.empty(n, dtype=np.int64)
    for s in row_blocks(n, k, 8, 16 * BLOCK_BYTES if block_bytes is None else block_bytes):
        zb = z[s] if transform is None else transform(z[s])
        block = _stats.Block.from_logits(zb, y[s])
        conf[s], ok[s] = block.top()
        acc.update_block(block)
    out = acc.compute()
    res = {key: out[key] for key in ("accuracy", "ece")}
    mass = _stats.Bins(_binning.equal_mass_edges(conf, n_bins))
    res["ece_mass"] = float(mass.finish(mass.update_values(mass.zeros(), conf, ok)))
    res.update({key: out[key] for key in ("ece_l2", "ece_l2_debiased", "mce", "classwise_ece", "nll", "brier")
                if key in out})
    if return_state:
        return res, acc, conf, ok
    return res
