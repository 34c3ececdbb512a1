"""Streaming metrics merged across processes with torch.distributed (gloo, CPU).

    python -m experiments.distributed_metrics --world-size 2 --rows 200000 --out result.json

Each process streams its own shard of predictions (seeded: shard r is rows r, r + W, ...
of one simulated data set) into a CalibrationAccumulator in batches, the states are
summed with one all_reduce, and rank 0 writes the metrics together with the one-shot
metrics of the whole data set, for comparison. This is the path for logits that do not
fit one machine: only O(bins x classes) numbers cross the network.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np


def simulated(n, k=10, seed=0):
    from calibrate.io.examples import simulated_logits

    return simulated_logits(n, k, seed=seed)


def worker(rank, world, init_file, rows, batch, out):
    import torch.distributed as dist

    from calibrate.backends.streaming import CalibrationAccumulator

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    z, y = simulated(rows)
    mine = np.arange(rank, rows, world)
    acc = CalibrationAccumulator(z.shape[1])
    for i in range(0, mine.size, batch):
        sel = mine[i:i + batch]
        acc.update(logits=z[sel], labels=y[sel])
    acc.all_reduce_torch()
    if rank == 0:
        from calibrate import metrics

        p = metrics.softmax(z)
        one_shot = {"ece": metrics.ece(p, y), "ece_l2": metrics.ece(p, y, norm="l2"), "mce": metrics.mce(p, y),
                    "classwise_ece": metrics.classwise_ece(p, y), "nll": metrics.nll_from_logits(z, y),
                    "brier": metrics.brier(p, y), "accuracy": metrics.accuracy(p, y)}
        with open(out, "w") as fh:
            json.dump({"world_size": world, "rows": rows, "streamed": acc.compute(), "one_shot": one_shot}, fh, indent=1)
    dist.destroy_process_group()


def main(argv=None):
    import torch.multiprocessing as mp

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world-size", type=int, default=2)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--out", default="distributed_metrics.json")
    args = ap.parse_args(argv)
    fd, init_file = tempfile.mkstemp(prefix="calibrate-dist-")
    os.close(fd)
    os.unlink(init_file)
    mp.spawn(worker, args=(args.world_size, init_file, args.rows, args.batch, args.out), nprocs=args.world_size)
    res = json.load(open(args.out))
    worst = max(abs(res["streamed"][k] - v) for k, v in res["one_shot"].items())
    print(f"{args.world_size} processes, {args.rows:,} rows: max |streamed - one-shot| = {worst:.2e}")
    return res


if __name__ == "__main__":
    main()
