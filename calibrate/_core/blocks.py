"""Row blocks: the one block policy, in bytes, by which every metric, statistic and
calibrator walks an (n, k) array in bounded memory.

A block is a slice of whole rows holding about ``BLOCK_BYTES`` bytes of one working copy
(``k * itemsize`` bytes a row), so the float64 working copies of one block (its
log-softmax, its exponentials) stay a few hundred KiB whatever n and k are, and the input
is never converted as a whole (a float32 input, a memory-mapped ``.npy``, stays as it is).
Sums over blocks are float64. Passes that hold several working copies at once, or that
need a block to stay in a core's cache, take a stated multiple or fraction of
``BLOCK_BYTES`` (see their modules).

Dask arrays are recognised here (without importing dask): see :mod:`calibrate._core.dispatch`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax as _log_softmax

BLOCK_BYTES = 1 << 19  # 512 KiB of one float64 working copy: 65,536 values


def block_rows(k: int, itemsize: int = 8, nbytes: int = BLOCK_BYTES) -> int:
    """Rows per block for rows of k values of ``itemsize`` bytes (at least 1)."""
    return max(1, int(nbytes) // (max(int(k), 1) * max(int(itemsize), 1)))


def row_blocks(n: int, k: int, itemsize: int = 8, nbytes: int = BLOCK_BYTES):
    """Yield ``slice`` objects covering rows 0..n in blocks of about ``nbytes`` bytes."""
    step = block_rows(k, itemsize, nbytes)
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def log_softmax64(zb: np.ndarray) -> np.ndarray:
    """(m, k) float64 log-softmax of one block (any float dtype in)."""
    return _log_softmax(np.asarray(zb, dtype=np.float64), axis=1)


def is_dask(x) -> bool:
    """True for a dask array (checked by type name: dask is never imported for this)."""
    t = type(x)
    return t.__name__ == "Array" and t.__module__.startswith("dask.array")


def all_finite(a: np.ndarray) -> bool:
    """np.isfinite(a).all() without an (n, k) boolean temporary."""
    if a.ndim < 2:
        return bool(np.isfinite(a).all())
    n, k = a.shape[0], int(np.prod(a.shape[1:]))
    return all(bool(np.isfinite(a[s]).all()) for s in row_blocks(n, k, a.itemsize, 16 * BLOCK_BYTES))


def row_max(zb: np.ndarray) -> np.ndarray:
    """(m,) maximum of each row; column by column for short rows (numpy's short-axis
    reductions are several times slower than elementwise maxima)."""
    k = zb.shape[1]
    if k > 32:
        return zb.max(axis=1)
    m = zb[:, 0].copy()
    for j in range(1, k):
        np.maximum(m, zb[:, j], out=m)
    return m


def worker_threads() -> int:
    """Threads for work that releases the GIL (sparse products, BLAS): the CPUs this
    process may run on, at most 4 (set CALIBRATE_THREADS to choose)."""
    import os

    env = os.environ.get("CALIBRATE_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover (not Linux)
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


_CONTROLLER = []


def one_blas_thread():
    """A context in which BLAS runs on one thread: the products inside a block loop are
    small, and a threaded BLAS synchronising on every one of them is several times slower
    (tens of times on a busy machine). threadpoolctl comes with scikit-learn."""
    import contextlib

    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")
