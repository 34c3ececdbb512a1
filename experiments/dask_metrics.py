"""Calibration metrics and temperature scaling on a Dask cluster, checked against memory.

    pip install "dask[array]" distributed
    python -m experiments.dask_metrics --rows 400000 --workers 2 [--out result.json]

The logits live in a dask array chunked by rows (here simulated chunk by chunk on the
workers, so they never exist in one process; in practice ``da.from_zarr`` or
``da.from_npy_stack``). ``calibrate.metrics`` and ``TemperatureScaling().fit`` accept the
dask array where they accept numpy: every metric is a sum over rows, so it is one
distributed pass; the temperature fit is one pass per Newton step (2 or 3 after a start on
an eighth of the rows). The script then computes the same numbers in memory and prints both.

For logits that come out of a torch job instead, stream them into
``calibrate.backends.streaming.CalibrationAccumulator`` on each rank and sum the states with
``all_reduce_torch`` (see ``experiments/distributed_metrics.py``).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def _chunk(i, rows, k):
    from calibrate.io.examples import simulated_logits

    return simulated_logits(rows, k, seed=1000 + i)


def main(argv=None):
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    import calibrate
    from calibrate import metrics

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--chunk", type=int, default=50_000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    k, c = args.classes, args.chunk
    n_chunks = max(1, args.rows // c)
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster):
        parts = [dask.delayed(_chunk)(i, c, k) for i in range(n_chunks)]
        z = da.concatenate([da.from_delayed(p[0], (c, k), np.float32) for p in parts])
        y = da.concatenate([da.from_delayed(p[1], (c,), np.int64) for p in parts])
        cal = calibrate.TemperatureScaling().fit(z, y)
        probs = calibrate.softmax(z)  # lazy
        on_cluster = {"T": cal.temperature_, "passes": cal.n_iter_, "nll_before": cal.nll_before_,
                      "nll_after": cal.nll_after_, "ece": metrics.ece(probs, y),
                      "classwise_ece": metrics.classwise_ece(probs, y), "brier": metrics.brier(probs, y),
                      "accuracy": metrics.accuracy(probs, y), "nll": metrics.nll_from_logits(z, y)}
        zn, yn = dask.compute(z, y, optimize_graph=False)
    cal_m = calibrate.TemperatureScaling().fit(zn, yn)
    pn = calibrate.softmax(zn)
    in_memory = {"T": cal_m.temperature_, "passes": cal_m.n_iter_, "nll_before": cal_m.nll_before_,
                 "nll_after": cal_m.nll_after_, "ece": metrics.ece(pn, yn), "classwise_ece": metrics.classwise_ece(pn, yn),
                 "brier": metrics.brier(pn, yn), "accuracy": metrics.accuracy(pn, yn), "nll": metrics.nll_from_logits(zn, yn)}
    result = {"rows": int(zn.shape[0]), "classes": k, "workers": args.workers, "dask": on_cluster, "numpy": in_memory,
              "max_relative_difference": max(abs(on_cluster[key] / in_memory[key] - 1) for key in in_memory)}
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
