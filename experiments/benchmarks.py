"""Speed and exactness against the libraries a user would pick instead, in one process.

    python -m experiments.benchmarks [--out reports/benchmarks.md] [--quick]

Needs the optional extras: pip install -e ".[bench]" (torchmetrics, netcal, relplot,
uncertainty-calibration); a missing one is reported as such. Times are medians of
repeated runs on this machine (torch set to all cores), measured in the same process
on the same arrays. Writes a Markdown table with versions, hardware and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib
import math
import time
import tracemalloc

import numpy as np

import calibrate
from calibrate import metrics
from calibrate.calibrators.scaling import fit_temperature_nll
from calibrate.examples import simulated_logits
from calibrate.report.html import environment


def timeit(fn, repeat=5, warmup=1):
    for _ in range(warmup):
        out = fn()
    ts = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def have(mod):
    try:
        importlib.import_module(mod)
        return True
    except Exception:  # noqa: BLE001 (an optional competitor that fails to import is reported as missing)
        return False


def exact_ece(p, y, n_bins=15):
    """float64 reference: Guo's (lower, upper] bins, confidences converted to float64 first."""
    p64 = p.astype(np.float64)
    conf, ok = p64.max(1), (p64.argmax(1) == y)
    edges = np.linspace(0, 1, n_bins + 1)
    e = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if lo == 0:
            m |= conf == 0
        if m.any():
            e += m.mean() * abs(ok[m].mean() - conf[m].mean())
    return e


def make_probs(n, k, seed):
    z, y = simulated_logits(n, k, seed=seed)
    return metrics.softmax(z).astype(np.float32), y


# ---------------------------------------------------------------------------------- 1. ECE
def bench_ece(n, k, rows, repeat):
    import torch

    p, y = make_probs(n, k, seed=1)
    ref = exact_ece(p, y)
    t_floor, _ = timeit(lambda: p.max(1), repeat)
    t_ours, ours = timeit(lambda: metrics.ece(p, y, 15), repeat)
    rows.append((f"ECE 15 bins, {n:,} x {k} float32", "calibrate", t_ours, ours - ref, "exact float64 sums"))
    rows.append((f"ECE 15 bins, {n:,} x {k} float32", "floor: one probs.max(1) pass", t_floor, None, ""))
    if have("torchmetrics"):
        from torchmetrics.functional.classification import multiclass_calibration_error

        pt, yt = torch.from_numpy(p), torch.from_numpy(y)
        t, v = timeit(lambda: multiclass_calibration_error(pt, yt, num_classes=k, n_bins=15).item(), repeat)
        rows.append((f"ECE 15 bins, {n:,} x {k} float32", "torchmetrics", t, v - ref, "float32 sums"))
    else:
        rows.append((f"ECE 15 bins, {n:,} x {k} float32", "torchmetrics", None, None, "not installed"))
    if have("relplot"):
        import relplot.metrics as rp

        def relplot_ece():  # relplot takes top-label confidences and 0/1 correctness
            pred = p.argmax(1)
            conf = p[np.arange(n), pred]
            return float(rp.binnedECE(conf, (pred == y).astype(float), nbins=15))

        t, v = timeit(relplot_ece, repeat)
        rows.append((f"ECE 15 bins, {n:,} x {k} float32", "relplot binnedECE (incl. top-label extraction)", t, v - ref, ""))
    if have("netcal"):
        from netcal.metrics import ECE

        est = ECE(bins=15)
        t, v = timeit(lambda: float(est.measure(p, y)), max(1, repeat // 2))
        rows.append((f"ECE 15 bins, {n:,} x {k} float32", "netcal", t, v - ref, ""))
    return t_ours, t_floor


# ------------------------------------------------------------------------- 2. temperature
def bench_temperature(n, k, rows, repeat):
    import torch
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    z, y = simulated_logits(n, k, temperature=2.5, seed=2)
    z64 = z.astype(np.float64)
    idx = np.arange(n)

    def nll64(log_t):
        return -np.mean(log_softmax(z64 / math.exp(log_t), axis=1)[idx, y])

    ref_t = math.exp(minimize_scalar(nll64, bounds=(math.log(0.05), math.log(100)), method="bounded",
                                     options={"xatol": 1e-9}).x)
    label = f"temperature fit, {n:,} x {k} float32"
    t, (ours, info) = timeit(lambda: fit_temperature_nll(z, y), repeat)
    rows.append((label, "calibrate (Newton in 1/T, float64)", t, ours / ref_t - 1, f"T = {ours:.5f}, {info['n_iter']} passes"))

    zt, yt = torch.from_numpy(z), torch.from_numpy(y)

    def scalar_torch():
        def f(log_t):
            with torch.no_grad():
                return torch.nn.functional.cross_entropy(zt / math.exp(log_t), yt).item()
        return math.exp(minimize_scalar(f, bounds=(math.log(0.05), math.log(100)), method="bounded").x)

    tt, v = timeit(scalar_torch, max(1, repeat // 2))
    rows.append((label, "bounded scalar search over torch float32 CE", tt, v / ref_t - 1, f"T = {v:.5f}"))

    def lbfgs():  # gpleiss/temperature_scaling: LBFGS(lr=0.01, max_iter=50) on T
        temp = torch.nn.Parameter(torch.ones(1) * 1.5)
        opt = torch.optim.LBFGS([temp], lr=0.01, max_iter=50)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(zt / temp, yt)
            loss.backward()
            return loss

        opt.step(closure)
        return temp.item()

    tl, v = timeit(lbfgs, max(1, repeat // 2))
    rows.append((label, "gpleiss-style LBFGS (lr 0.01, 50 iterations)", tl, v / ref_t - 1, f"T = {v:.5f}"))

    from sklearn.calibration import _TemperatureScaling

    ts, v = timeit(lambda: 1.0 / _TemperatureScaling().fit(z, y).beta_, max(1, repeat // 2))
    rows.append((label, "scikit-learn _TemperatureScaling (float32 in)", ts, v / ref_t - 1, f"T = {v:.5f}"))
    if have("netcal"):
        from netcal.scaling import TemperatureScaling as NetcalTS

        p32 = metrics.softmax(z).astype(np.float32)

        def netcal_fit():
            m = NetcalTS()
            m.fit(p32, y)
            w = np.asarray(m.weights).ravel()
            return 1.0 / float(w[0]) if w.size else float("nan")

        tn, v = timeit(netcal_fit, 1, warmup=0)
        rows.append((label, "netcal TemperatureScaling (float32 probabilities)", tn, v / ref_t - 1, f"T = {v:.5f}"))
    return t, tt


# --------------------------------------------------------------------------- 3. bootstrap
def bench_bootstrap(n, rows, repeat):
    p, y = make_probs(n, 10, seed=3)
    label = f"bootstrap 95 % CI of ECE, n = {n:,}, 1000 resamples"
    t, ci = timeit(lambda: calibrate.bootstrap_ci("ece", p, y, n_resamples=1000), repeat)
    rows.append((label, "calibrate (vectorised)", t, None, f"[{ci.low:.4f}, {ci.high:.4f}]"))
    if have("calibration"):
        import calibration as unc

        conf, pred = p.max(1).astype(np.float64), p.argmax(1)
        correct = (pred == y).astype(int)
        t2, out = timeit(lambda: unc.get_calibration_error_uncertainties(np.stack([1 - conf, conf], 1),
                                                                          correct, p=1, alpha=0.05, mode="top-label"), 1, warmup=0)
        rows.append((label, "uncertainty-calibration (top-label, its default bins)", t2, None,
                     f"[{out[0]:.4f}, {out[2]:.4f}]"))
    return t


# --------------------------------------------------------------------------- 4. streaming
def bench_streaming(sizes, rows, batch=100_000):
    from calibrate.streaming import CalibrationAccumulator

    rng = np.random.default_rng(0)
    for total in sizes:
        acc = CalibrationAccumulator(10)
        tracemalloc.start()
        t0 = time.perf_counter()
        for _ in range(total // batch):
            z = rng.standard_normal((batch, 10), dtype=np.float32) * 3
            y = rng.integers(0, 10, batch)
            acc.update(logits=z, labels=y)
            del z, y
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append((f"stream {total:,} rows x 10 in batches of {batch:,}", "calibrate CalibrationAccumulator",
                     time.perf_counter() - t0, None,
                     f"peak traced memory {peak / 2**20:.1f} MiB; state {sum(v.nbytes for v in acc.state_dict().values()):,} bytes"))
    if have("torchmetrics"):
        import torch
        from torchmetrics.classification import MulticlassCalibrationError

        for total in sizes[:2]:
            m = MulticlassCalibrationError(num_classes=10, n_bins=15)
            for _ in range(total // batch):
                z = torch.randn(batch, 10) * 3
                m.update(torch.softmax(z, 1), torch.randint(0, 10, (batch,)))
            state = sum(t.numel() * t.element_size() for name in ("confidences", "accuracies") for t in getattr(m, name))
            rows.append((f"stream {total:,} rows x 10 in batches of {batch:,}", "torchmetrics MulticlassCalibrationError",
                         None, None, f"state {state:,} bytes (grows with the rows)"))


def profile_ece(n, k):
    """Where the time of one ECE call goes: the top functions of cProfile, as Markdown rows."""
    import cProfile
    import pstats

    p, y = make_probs(n, k, seed=1)
    metrics.ece(p, y)
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(10):
        metrics.ece(p, y)
    pr.disable()
    st = pstats.Stats(pr)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:6]
    out = [f"ECE on {n:,} x {k} float32, 10 calls (tottime per call, ms):", "",
           "| function | ms per call |", "|---|---:|"]
    for (file, line, fn), (_, _, tottime, _, _) in rows:
        where = f"{file.rsplit('/', 2)[-2]}/{file.rsplit('/', 1)[-1]}:{line} {fn}" if "/" in file else fn
        out.append(f"| `{where}` | {1000 * tottime / 10:.1f} |")
    return out + [""]


def render(rows, env, args, seconds, checks, profiles=()):
    lines = ["# Benchmarks", "",
             f"Made by `python -m experiments.benchmarks{' --quick' if args.quick else ''}` on "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {seconds:.0f} s in all.",
             f"Machine: {env['cpu']}, {env['cores']} cores, no GPU; {env['platform']}.",
             "Versions: " + ", ".join(f"{a} {b}" for a, b in env["packages"].items() if b) + ", "
             + ", ".join(f"{m} {_version(m)}" for m in ("torchmetrics", "netcal", "relplot", "uncertainty-calibration")) + ".",
             "Times are medians of repeated runs in one process on the same arrays; error columns are against a "
             "float64 reference (ECE: Guo's bins on float64 confidences; T: a bounded scalar minimisation of the "
             "float64 NLL, xatol 1e-9).", "",
             "| task | implementation | seconds | error vs float64 reference | notes |", "|---|---|---:|---:|---|"]
    for task, impl, t, err, note in rows:
        ts = "—" if t is None else f"{t:.4f}"
        es = "—" if err is None else f"{err:+.2e}"
        lines.append(f"| {task} | {impl} | {ts} | {es} | {note} |")
    lines += ["", "## Targets", ""] + [f"- {c}" for c in checks] + [""]
    if profiles:
        lines += ["## Where the time goes", ""]
        for prof in profiles:
            lines += prof
    return "\n".join(lines)


def _version(pkg):
    import importlib.metadata

    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/benchmarks.md")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = ap.parse_args(argv)
    t0 = time.time()
    rows, checks = [], []
    big = 100_000 if args.quick else 1_000_000
    rep = 3 if args.quick else 5
    def mark(ok):
        return "met" if ok else "NOT met"

    t_ece, t_floor = bench_ece(big, 10, rows, rep)
    t_tm = next((r[2] for r in rows if r[1] == "torchmetrics" and r[2] is not None and f"{big:,} x 10" in r[0]), None)
    checks.append(f"ECE {big:,} x 10: {t_ece:.3f} s = {t_ece / t_floor:.2f} x one probs.max(1) pass (target <= 2x: "
                  f"{mark(t_ece <= 2 * t_floor)})" + ("" if t_tm is None else
                  f"; {t_ece / t_tm:.2f} x torchmetrics (target <= 1: {mark(t_ece <= t_tm)})"))
    n2 = 5_000 if args.quick else 50_000
    t_ece2, t_floor2 = bench_ece(n2, 1000, rows, rep)
    checks.append(f"ECE {n2:,} x 1000: {t_ece2 / t_floor2:.2f} x the floor (target <= 2x: {mark(t_ece2 <= 2 * t_floor2)})")
    t_temp, t_alt = bench_temperature(big, 10, rows, rep)
    checks.append(f"temperature fit: {t_temp:.3f} s = {t_temp / t_alt:.2f} x the bounded scalar search over torch CE "
                  f"(target <= 1/3: {mark(t_temp <= t_alt / 3)})")
    t_boot = bench_bootstrap(10_000, rows, rep)
    checks.append(f"bootstrap CI of ECE, 10,000 rows, 1000 resamples: {t_boot:.3f} s (target <= 0.2 s: {mark(t_boot <= 0.2)})")
    profiles = [profile_ece(big, 10), profile_ece(n2, 1000)]
    bench_streaming([10**5, 10**6] if args.quick else [10**6, 10**7, 10**8], rows)
    text = render(rows, environment(), args, time.time() - t0, checks, profiles)
    from calibrate.io import atomic_write_text

    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
