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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="examples")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("val", 5000, 1), ("test", 10000, 2)):
        z, y = simulated_logits(n, seed=seed)
        atomic_save_npz(out / f"{name}.npz", logits=z, labels=y)
        print(f"wrote {out / f'{name}.npz'}: logits {z.shape}, labels {y.shape}")


if __name__ == "__main__":
    main()
