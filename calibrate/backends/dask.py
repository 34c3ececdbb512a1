"""Dask arrays: the metrics, the streaming accumulator and the temperature fit on a cluster.

Every quantity is a sum over rows, so each is one distributed pass: every chunk of rows
(all k columns in one chunk) is reduced to a few float64 sums by the numpy code of this
package, and the sums are added. The numbers equal the in-memory ones up to the order of
float64 additions (1e-12 relative is tested). Nothing here imports dask until a dask
array is passed (``pip install "calibrate[dask]"``).

    import dask.array as da
    z = da.from_zarr(...)            # (n, k) logits, chunked by rows
    y = da.from_zarr(...)            # (n,) labels
    T = calibrate.TemperatureScaling().fit(z, y).temperature_   # one dask pass per Newton step
    calibrate.metrics.ece(calibrate.softmax(z), y)                # lazy softmax, one pass
"""

from __future__ import annotations

import numpy as np

from calibrate._core.validation import InputError


def _dask():
    import dask
    import dask.array as da

    return dask, da


def _prepare(x, labels, name):
    """x with all columns in one chunk, and labels as a dask array chunked like its rows."""
    _, da = _dask()
    x = x if hasattr(x, "dask") else da.from_array(np.asarray(x))
    if x.ndim != 2:
        raise InputError(f"{name}: expected a dask array of shape (n, k), got {x.ndim} dimensions {x.shape}")
    if any(np.isnan(c) for c in x.chunks[0]):
        raise InputError(f"{name}: the dask array has unknown chunk sizes; call compute_chunk_sizes() first")
    if len(x.chunks[1]) != 1:
        x = x.rechunk({1: -1})
    y = labels if hasattr(labels, "dask") else da.from_array(np.asarray(labels))
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InputError(f"labels: expected {x.shape[0]} labels (one per row), got shape {y.shape}")
    if y.chunks[0] != x.chunks[0]:
        y = y.rechunk((x.chunks[0],))
    return x, y


def _sum_chunks(fn, x, y, *args):
    """sum over row chunks of fn(x_chunk (numpy), y_chunk (numpy), *args) (float64 arrays)."""
    dask, _ = _dask()
    parts = [dask.delayed(fn)(a, b, *args) for a, b in zip(_delayed(x), _delayed(y))]
    return np.asarray(dask.delayed(_add)(parts).compute(), dtype=np.float64)


def _delayed(a):
    # unoptimised: an optimised graph renames fused tasks differently on every call, which
    # the distributed scheduler warns about when the same array is reduced again
    return a.to_delayed(optimize_graph=False).ravel()


def _add(parts):
    out = np.zeros_like(np.asarray(parts[0], dtype=np.float64))
    for p in parts:
        out = out + p
    return out


# ------------------------------------------------------------------ per-chunk sums
def _chunk_sums(name, kind, n_bins, classwise):
    """A function (x chunk, y chunk) -> float64 sums for metric ``name``."""
    from calibrate._core import binning as _binning
    from calibrate._core.blocks import log_softmax64
    from calibrate._core.validation import check_logits_labels, check_probs_labels
    from calibrate.metrics.calibration import _brier_terms, _nll_terms, _top_label, classwise_sums

    def probs_of(x, y):
        if kind == "logits":
            z, y = check_logits_labels(x, y)
            lp = log_softmax64(z)
            return np.exp(lp), y, lp
        p, y = check_probs_labels(x, y)
        return p, y, None

    def fn(x, y):
        p, y, lp = probs_of(x, y)
        n = float(p.shape[0])
        if name == "accuracy":
            return np.array([n, _top_label(p, y)[1].sum()])
        if name == "nll":
            return np.array([n, _nll_terms(p, y, lp).sum()])
        if name == "brier":
            return np.array([n, _brier_terms(p, y).sum()])
        if classwise:
            return np.stack(classwise_sums(p, y, n_bins, "width"))
        conf, ok = _top_label(p, y)
        edges = _binning.equal_width_edges(n_bins)
        return np.stack(_binning.bin_sums(_binning.bin_index(conf, edges), conf, ok, n_bins))

    return fn


def _top_label_chunk(x, y):
    from calibrate._core.validation import check_probs_labels
    from calibrate.metrics.calibration import _top_label

    p, y = check_probs_labels(x, y)
    c, ok = _top_label(p, y)
    return np.stack([c.astype(np.float64), ok.astype(np.float64)])


def metric(name, x, labels, *, n_bins=15, binning="width", norm="l1", classwise=False, debiased=False):
    """calibrate.metrics.<name> of a dask array (see the module docstring)."""
    from calibrate.metrics.calibration import _group_errors, ece_from_confidences

    kind = "probs"
    if name == "nll_from_logits":
        name, kind = "nll", "logits"
    x, y = _prepare(x, labels, "logits" if kind == "logits" else "probs")
    if name in ("accuracy", "nll", "brier"):
        s = _sum_chunks(_chunk_sums(name, kind, n_bins, False), x, y)
        return float(s[1] / s[0])
    # ece
    if binning == "mass":
        if classwise:
            raise InputError("binning: class-wise equal-mass ECE of a dask array is not supported; use 'width'")
        dask, _ = _dask()
        parts = [dask.delayed(_top_label_chunk)(a, b) for a, b in zip(_delayed(x), _delayed(y))]
        cy = np.concatenate(dask.compute(*parts), axis=1)
        return ece_from_confidences(cy[0], cy[1].astype(np.int64), n_bins, binning="mass", norm=norm,
                                    debiased=debiased)
    s = _sum_chunks(_chunk_sums("ece", kind, n_bins, classwise), x, y)
    rng = np.random.default_rng(0)
    if not classwise:
        return float(_group_errors(s[0][None], s[1][None], s[2][None], norm, debiased, rng)[0])
    per_class = _group_errors(s[0], s[1], s[2], norm, debiased, rng)
    if norm == "l1":
        return float(per_class.mean())
    if norm == "l2":
        return float(np.sqrt(np.mean(per_class**2)))
    return float(per_class.max())


# ------------------------------------------------------------------ streaming
def _accumulate_chunk(x, y, n_classes, edges, classwise, kind):
    from calibrate.backends.streaming import CalibrationAccumulator

    acc = CalibrationAccumulator(n_classes, edges=edges, classwise=classwise)
    acc.update(**{"probs" if kind == "probs" else "logits": x}, labels=y)
    return np.concatenate([v.ravel() for v in acc.state_dict().values()])


def accumulate(like, x, labels, kind):
    """A new accumulator (configured like ``like``) holding the sums of a dask array."""
    from calibrate.backends.streaming import CalibrationAccumulator

    x, y = _prepare(x, labels, kind)
    flat = _sum_chunks(_accumulate_chunk, x, y, like.n_classes, like.edges, like.classwise, kind)
    out = CalibrationAccumulator(like.n_classes, edges=like.edges, classwise=like.classwise)
    state, i = {}, 0
    for key, v in out.state_dict().items():
        state[key] = flat[i:i + v.size].reshape(v.shape)
        i += v.size
    return out.load_state_dict(state)


# ------------------------------------------------------------------ temperature
def nll_sums_dask(z, y, a, also_at=None, with_mean=True):
    """calibrate.calibrators.scaling.nll_derivative_sums over the chunks of z (one pass)."""
    import functools

    from calibrate.calibrators.scaling import nll_derivative_sums

    return _sum_chunks(functools.partial(nll_derivative_sums, with_mean=with_mean), z, y, a, also_at)


def fit_temperature_dask(z, labels, bounds=None):
    """fit_temperature_nll where each pass (NLL and derivatives at one T) is a dask pass."""
    from calibrate._core.validation import check_labels
    from calibrate.calibrators.scaling import fit_temperature_nll

    z, y = _prepare(z, labels, "logits")
    if z.shape[1] < 2:
        raise InputError(f"logits: a calibrator needs at least 2 classes, got shape {z.shape}")
    lo, hi = (int(v) for v in _dask()[0].compute(y.min(), y.max()))
    check_labels(np.array([lo, hi]), None, z.shape[1])
    if z.dtype.kind not in "fiu":
        raise InputError(f"logits: expected a float array, got dtype {z.dtype}")
    return fit_temperature_nll(z, y, bounds, sums=nll_sums_dask)


def log_softmax_scaled(z, a):
    """Lazy (n, k) float64 log-softmax of a * z (a dask array)."""
    from calibrate._core.blocks import log_softmax64

    _, da = _dask()
    z = z.rechunk({1: -1})
    return z.map_blocks(lambda b: log_softmax64(np.multiply(b, a, dtype=np.float64)), dtype=np.float64)
