"""The CIFAR-10 study's group view (per class, per corruption), from its saved logits.

    python -m experiments.cifar10_groups reports/cifar10 [--models baseline,overfit_noaug] [--resamples 200]

reads OUT/logits/{MODEL_val,MODEL_test,shift_MODEL}.npz (written by ``calibrate experiment``)
and writes OUT/groups.html and OUT/groups.json (see calibrate.apps.cifar10.groups). A fresh
``calibrate experiment`` writes the same page itself.
"""
from __future__ import annotations

import argparse

from calibrate.apps.cifar10.groups import DEFAULT_MODELS, group_view


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the study's output folder (holds logits/)")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    paths = group_view(a.out, [m for m in a.models.split(",") if m], n_resamples=a.resamples, seed=a.seed)
    print("wrote " + " and ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
