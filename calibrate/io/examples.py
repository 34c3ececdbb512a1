"""Make the small example files the README's quick start uses (synthetic, offline).

    python -m calibrate.io.examples examples/

writes ``val.npz`` and ``test.npz`` (arrays ``logits`` (n, 10) float32, ``labels`` (n,) int64)
of a simulated over-confident 10-class model: labels are drawn from softmax(u) and the
saved logits are 2.5 u, so the probabilities are too sharp and the NLL-optimal
temperature is near 2.5. Seeded: the files are the same bits on every machine.
The CIFAR-10 experiment (``calibrate experiment``) writes real logits in the same format.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from calibrate.io.readers import atomic_save_npz


def simulated_logits(n: int, k: int = 10, temperature: float = 2.5, seed: int = 0):
    """(logits (n, k) float32, labels (n,) int64) of a model over-confident by `temperature`."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, k)) * 1.5
    u[np.arange(n), rng.integers(0, k, n)] += 3.0
    p = np.exp(u - u.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return (u * temperature).astype(np.float32), labels.astype(np.int64)


def imagenet_shaped_logits(n: int, k: int = 1000, seed: int = 0, *, out=None):
    """(logits (n, k) float32, labels (n,) int64) shaped like an ImageNet classifier's:
    about 75 % top-1 accuracy, over-confident, miscalibrated differently per class.

    A calibrated model u: Gaussian noise (sd 1) over the k classes plus a margin on one
    class per row (drawn from class priors ~ Dirichlet(20), so supports differ), the margin
    log(k e^0.5) + N(2.2, 2.5) so that about 3 in 4 rows are right whatever k; the label is
    drawn from softmax(u) (inverse CDF of each row). The saved logits are 1.6 u + b_j with a per-class
    offset b_j ~ N(0, 0.4) and a per-class extra sharpening (u_j scaled by 1 + 0.5 Beta(2, 5)
    on the row's margin class): over-confident on average, unevenly across classes.
    out: an (n, k) float32 array to fill (e.g. a memory-mapped .npy), written in blocks of
    about 4 million values so that memory stays one block; the result is the same for any out.
    Seeded: the same bits on every machine for the same (n, k, seed).
    """
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(k, 20.0))
    bias = rng.normal(0.0, 0.4, k)
    sharp = 1.0 + 0.5 * rng.beta(2.0, 5.0, k)
    z = np.empty((n, k), dtype=np.float32) if out is None else out
    labels = np.empty(n, dtype=np.int64)
    base = np.log(k) + 0.5
    block_rows = max(1, 4_000_000 // k)
    for a in range(0, n, block_rows):
        m = min(block_rows, n - a)
        u = rng.standard_normal((m, k))
        top = rng.choice(k, size=m, p=prior)
        rows = np.arange(m)
        u[rows, top] += base + rng.normal(2.2, 2.5, m)
        cdf = np.cumsum(np.exp(u - u.max(axis=1, keepdims=True)), axis=1)
        draw = rng.random(m) * cdf[:, -1]
        labels[a:a + m] = np.minimum((cdf < draw[:, None]).sum(axis=1), k - 1)
        zb = 1.6 * u
        zb[rows, top] *= sharp[top]
        zb += bias
        z[a:a + m] = zb
    return z, labels


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="examples")
    ap.add_argument("--imagenet-shaped", type=int, default=None, metavar="N",
                    help="write N x 1000 ImageNet-shaped logits instead (imagenet_shaped_logits), val and test")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    m = args.imagenet_shaped
    for name, n, seed in (("val", m or 5000, 1), ("test", m or 10000, 2)):
        z, y = imagenet_shaped_logits(n, 1000, seed=seed) if m else simulated_logits(n, seed=seed)
        atomic_save_npz(out / f"{name}.npz", logits=z, labels=y)
        print(f"wrote {out / f'{name}.npz'}: logits {z.shape}, labels {y.shape}")


if __name__ == "__main__":
    main()
