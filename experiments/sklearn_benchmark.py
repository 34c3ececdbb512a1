"""calibrate.CalibratedClassifier against scikit-learn's CalibratedClassifierCV.

    nice python -m experiments.sklearn_benchmark            # writes reports/sklearn_benchmark.md

Data shipped with scikit-learn (offline: covertype needs a download, so it is not used):
digits (1797 x 64, 10 classes), breast_cancer (569 x 30, 2 classes) and a synthetic
make_classification problem (2000 x 20, 5 classes). Each is split once, stratified,
70 % train / 30 % held-out test (seed 0). Every calibrated model is fitted on the train
part with the same 5-fold StratifiedKFold (shuffled, seed 0) and scored on the test part:
NLL (sklearn.metrics.log_loss), top-label ECE (15 equal-width bins, calibrate.metrics.ece),
accuracy, and the wall time of fit + predict_proba, one thread (threadpoolctl).

Methods: the uncalibrated classifier fitted on all of train (LinearSVC has no
predict_proba: softmax of its decision values); scikit-learn's CalibratedClassifierCV
with method "sigmoid" and "isotonic" at its default ensemble=True; ours with
"temperature" (our default ensemble=False: one temperature on out-of-fold logits),
"platt" and "isotonic" (also ensemble=False).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from calibrate import CalibratedClassifier, metrics
from calibrate._core.machine import cpu_model
from calibrate.metrics.calibration import softmax


def datasets():
    X, y = load_digits(return_X_y=True)
    yield "digits", X, y
    X, y = load_breast_cancer(return_X_y=True)
    yield "breast_cancer", X, y
    X, y = make_classification(n_samples=2000, n_features=20, n_informative=8, n_redundant=4, n_classes=5,
                               n_clusters_per_class=2, flip_y=0.05, random_state=0)
    yield "synthetic (make_classification)", X, y


def classifiers():
    return {
        "LinearSVC": make_pipeline(StandardScaler(), LinearSVC(C=0.1)),
        "RandomForest": RandomForestClassifier(n_estimators=30, random_state=0),
        "GaussianNB": GaussianNB(),
        "HistGradientBoosting": HistGradientBoostingClassifier(max_iter=25, max_leaf_nodes=15, random_state=0),
        "MLP": make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=100, random_state=0)),
    }


def methods(est, cv):
    return {
        "uncalibrated": est,
        "sklearn sigmoid": CalibratedClassifierCV(est, method="sigmoid", cv=cv),
        "sklearn isotonic": CalibratedClassifierCV(est, method="isotonic", cv=cv),
        "ours temperature": CalibratedClassifier(est, method="temperature", cv=cv),
        "ours platt": CalibratedClassifier(est, method="platt", cv=cv),
        "ours isotonic": CalibratedClassifier(est, method="isotonic", cv=cv),
    }


def _proba(model, X):
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    return softmax(np.asarray(model.decision_function(X), dtype=np.float64).reshape(len(X), -1)
                   if len(model.classes_) > 2 else np.stack([np.zeros(len(X)), model.decision_function(X)], 1))


def run(out: Path, only=None):
    rows = []
    for dname, X, y in datasets():
        if only and not any(dname.startswith(o) for o in only):
            continue
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
        for cname, est in classifiers().items():
            for mname, model in methods(est, StratifiedKFold(5, shuffle=True, random_state=0)).items():
                t0 = time.perf_counter()
                model.fit(Xtr, ytr)
                p = _proba(model, Xte)
                dt = time.perf_counter() - t0
                p = np.clip(p, 0.0, 1.0)
                p /= p.sum(1, keepdims=True)
                rows.append({
                    "dataset": dname, "classifier": cname, "method": mname,
                    "nll": log_loss(yte, p, labels=np.unique(y)), "ece": metrics.ece(p, yte),
                    "acc": float(np.mean(p.argmax(1) == yte)), "time": dt,
                })
                print(f"{dname:<32} {cname:<21} {mname:<17} NLL {rows[-1]['nll']:.4f} ECE {rows[-1]['ece']:.4f} "
                      f"{dt:6.2f} s", flush=True)
    out.write_text(render(rows))
    print(f"wrote {out}")



def render(rows) -> str:
    names = list(dict.fromkeys(r["method"] for r in rows))
    lines = [
        "# CalibratedClassifier vs scikit-learn's CalibratedClassifierCV",
        "",
        f"Written by `python -m experiments.sklearn_benchmark` on {time.strftime('%Y-%m-%d')}: "
        f"{cpu_model()}, {os.cpu_count()} cores shared with other work, one BLAS/OpenMP thread, "
        f"Python {platform.python_version()}, scikit-learn {sklearn.__version__}, numpy {np.__version__}.",
        "",
        "Held-out test split (30 %, stratified, seed 0) of data shipped with scikit-learn (covertype",
        "needs a download and is not used). Every calibrated model uses the same 5-fold StratifiedKFold",
        "on the training part. sklearn = `CalibratedClassifierCV(method=..., ensemble=True)` (its",
        "default: 5 classifier + calibrator pairs averaged); ours = `calibrate.CalibratedClassifier(method=...)`",
        "with its default `ensemble=False` (one calibrator on out-of-fold logits, the classifier refitted",
        "on all the training data). NLL: `sklearn.metrics.log_loss`; ECE: top-label, 15 equal-width bins;",
        "time: fit + predict_proba, seconds (wall; the machine was shared, so read times as rough).",
        "Classifiers (small, to keep the run short): " + "; ".join(
            f"{k} = `{' '.join(repr(v).split())}`" for k, v in classifiers().items()) + ".",
        "",
        "## Summary",
        "",
        "| method | mean NLL rank | best NLL (of 15) | mean ECE rank | best ECE (of 15) | total time s |",
        "|---|---|---|---|---|---|",
    ]
    groups = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["classifier"]), {})[r["method"]] = r
    n_groups = len(groups)
    for m in names:
        nll_ranks, ece_ranks, nll_best, ece_best = [], [], 0, 0
        for g in groups.values():
            order_nll = sorted(g, key=lambda k: g[k]["nll"])
            order_ece = sorted(g, key=lambda k: g[k]["ece"])
            nll_ranks.append(order_nll.index(m) + 1)
            ece_ranks.append(order_ece.index(m) + 1)
            nll_best += order_nll[0] == m
            ece_best += order_ece[0] == m
        total = sum(g[m]["time"] for g in groups.values())
        lines.append(f"| {m} | {np.mean(nll_ranks):.2f} | {nll_best} | {np.mean(ece_ranks):.2f} | {ece_best} | {total:.1f} |")
    lines[lines.index("| method | mean NLL rank | best NLL (of 15) | mean ECE rank | best ECE (of 15) | total time s |")] = (
        f"| method | mean NLL rank | best NLL (of {n_groups}) | mean ECE rank | best ECE (of {n_groups}) | total time s |")
    lines += ["", "## Every run (NLL / ECE / time s; accuracy of the uncalibrated model in the first column)", ""]
    for dname in dict.fromkeys(r["dataset"] for r in rows):
        lines += [f"### {dname}", "", "| classifier | " + " | ".join(names) + " |",
                  "|---" * (len(names) + 1) + "|"]
        for (d, c), g in groups.items():
            if d != dname:
                continue
            best = min(g[m]["nll"] for m in names)
            cells = []
            for m in names:
                r = g[m]
                nll = f"**{r['nll']:.4f}**" if r["nll"] == best else f"{r['nll']:.4f}"
                cells.append(f"{nll} / {r['ece']:.4f} / {r['time']:.2f}")
            lines.append(f"| {c} (acc {g['uncalibrated']['acc']:.3f}) | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Bold: the lowest NLL of the row.")
    lines += ["", NOTES]
    return "\n".join(lines) + "\n"


NOTES = """## Notes

- Logits: LinearSVC and HistGradientBoosting give `decision_function`; RandomForest,
  GaussianNB and MLP have none, so their log `predict_proba` is used, where a
  probability of exactly 0 becomes log(tiny) = -708. A forest's (or an underflowing
  GaussianNB's) zeros are then extreme logits that one temperature, or one Platt fit per
  class, cannot tame: use `method="isotonic"` (it works on the probabilities) for such
  classifiers. scikit-learn's sigmoid works on the probabilities themselves there.
- Time: ours with `ensemble=False` fits the classifier 6 times (5 folds + the refit on all
  the training data), scikit-learn's `ensemble=True` 5 times, and predicts with 1 classifier
  instead of 5."""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/sklearn_benchmark.md")
    ap.add_argument("--datasets", nargs="*", help="only these (digits, breast_cancer, synthetic)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*(converge|Maximum iterations).*")
    with threadpool_limits(1):
        run(Path(args.out), args.datasets)


if __name__ == "__main__":
    main()
