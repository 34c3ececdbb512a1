"""Dask arrays: any statistic of :mod:`calibrate._core.stats`, mapped over row chunks and merged.

Every statistic is a sum over rows, so each is one distributed pass: every chunk of rows
(all k columns in one chunk) is reduced to its float64 state by the numpy code of
:mod:`calibrate._core`, and the states are added. The numbers equal the in-memory ones up
to the order of float64 additions (1e-12 relative is tested). Nothing here imports dask
until a dask array is passed (``pip install "calibrate[dask]"``); importing this module
registers it with :mod:`calibrate._core.dispatch`, so every metric, the streaming
accumulator and the temperature fit take dask arrays.

    import dask.array as da
    z = da.from_zarr(...)            # (n, k) logits, chunked by rows
    y = da.from_zarr(...)            # (n,) labels
    T = calibrate.TemperatureScaling().fit(z, y).temperature_   # one dask pass per Newton step
    calibrate.metrics.ece(calibrate.softmax(z), y)                # lazy softmax, one pass
"""

from __future__ import annotations

import numpy as np

from calibrate._core import dispatch as _dispatch
from calibrate._core.blocks import is_dask
from calibrate._core.validation import InputError


def _dask():
    import dask
    import dask.array as da

    return dask, da


def prepare(x, labels, name):
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


def _delayed(a):
    # unoptimised: an optimised graph renames fused tasks differently on every call, which
    # the distributed scheduler warns about when the same array is reduced again
    return a.to_delayed(optimize_graph=False).ravel()


def _add(parts):
    out = np.zeros_like(np.asarray(parts[0], dtype=np.float64))
    for p in parts:
        out = out + p
    return out


def _chunk_parts(fn, x, labels, args, name="array"):
    dask, _ = _dask()
    x, y = prepare(x, labels, name)
    return dask, [dask.delayed(fn)(a, b, *args) for a, b in zip(_delayed(x), _delayed(y))]


def map_reduce(fn, x, labels, *args):
    """The float64 sum over row chunks of fn(x chunk (numpy), labels chunk (numpy), *args)."""
    dask, parts = _chunk_parts(fn, x, labels, args)
    return np.asarray(dask.delayed(_add)(parts).compute(), dtype=np.float64)


def map_concat(fn, x, labels, *args):
    """The row chunks' fn(x chunk, labels chunk, *args) arrays, joined along the last axis."""
    dask, parts = _chunk_parts(fn, x, labels, args)
    return np.concatenate(dask.compute(*parts), axis=-1)


def map_rows(fn, x):
    """The lazy (n, k) float64 array fn(x chunk) over row chunks of x (all columns in one)."""
    x = x.rechunk({1: -1})
    return x.map_blocks(fn, dtype=np.float64)


def value_range(a):
    """(min, max) of a dask array, as Python numbers (one pass)."""
    dask, _ = _dask()
    lo, hi = dask.compute(a.min(), a.max())
    return lo.item(), hi.item()


_dispatch.register(_dispatch.Backend(is_dask, map_reduce, map_concat, map_rows))
