"""Re-render the CIFAR-10 study's report from its saved run, with no training and no images.

    python -m experiments.cifar10_render reports/cifar10

reads OUT/metrics.json and OUT/logits/*.npz (written by ``calibrate experiment``), refits
the calibrators on the saved validation logits, rebuilds the reliability diagrams and the
risk-coverage and ROC curves with the runner's code, checks every number it recomputes
against metrics.json (it refuses, writing nothing, at the first that differs) and writes
OUT/report.html and OUT/report.pdf as one unit (calibrate.apps.cifar10.render).
metrics.json is never rewritten.
"""
from __future__ import annotations

import argparse
import shlex
import sys


def main(argv=None) -> int:
    from calibrate.report.html import display_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the study's output folder (holds metrics.json and logits/)")
    a = ap.parse_args(argv)
    from calibrate.apps.cifar10.render import render_saved_run

    command = f"python -m experiments.cifar10_render {shlex.quote(display_path(a.out))}"
    try:
        paths = render_saved_run(a.out, command)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("wrote " + " and ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
