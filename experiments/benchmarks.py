"""Speed, peak memory and exactness of what users call, against the libraries they would
pick instead, in one run.

    python -m experiments.benchmarks [--out reports/benchmarks.md] [--quick]

Times the public API (``calibrate.metrics.ece``, ``TemperatureScaling().fit``,
``bootstrap_ci``) and the CLI (``calibrate fit``, ``calibrate report``) as users call them.
Peak memory is measured in a fresh subprocess per job: VmHWM of /proc/self/status, reset
(clear_refs) once the input exists, minus the resident size then; the working memory is
that minus the input pages read during the job (a memory-mapped file's).
Anchors run in the same process on the same arrays: torchmetrics, scikit-learn, netcal,
relplot (imported in a subprocess: it changes matplotlib's global style). The machine may
be shared: times are the minimum of repeats. Needs the bench extra
(pip install -e ".[bench]"); a missing anchor is reported as such. --quick: small sizes,
a smoke run of a minute or two.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import calibrate
from calibrate import metrics
from calibrate.io.examples import simulated_logits
from calibrate.report.html import environment

ROOT = Path(__file__).resolve().parents[1]


def timeit(fn, repeat=5, warmup=1):
    """(minimum seconds over ``repeat`` runs, last result): the minimum, as the machine is shared."""
    out = None
    for _ in range(warmup):
        out = fn()
    ts = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(min(ts)), out


def have(mod):
    try:
        importlib.import_module(mod)
        return True
    except Exception:  # noqa: BLE001 (an optional anchor that fails to import is reported as missing)
        return False


def machine():
    import torch

    env = environment()
    return {"cpu": env["cpu"], "cores": env["cores"], "capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(), "platform": env["platform"], "packages": env["packages"],
            "isa_env": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if k in os.environ}}


def exact_ece(p, y, n_bins=15):
    """float64 reference: Guo's (lower, upper] bins, a loop over bins on float64 confidences."""
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


# ---------------------------------------------------------------------- subprocess jobs
_CHILD = r"""
import json, sys, time, resource
def reset_peak():  # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0
import numpy as np, calibrate
from calibrate.io.examples import simulated_logits
job = json.loads(sys.argv[1])
base = rss("VmRSS:")
{body}
print(json.dumps(dict(out, peak=rss("VmHWM:"), base=base)))
"""


def child(body: str, job: dict, timeout=1800):
    """Run ``body`` in a fresh interpreter; it sets ``out`` (a dict). Returns out + peak/base bytes."""
    code = _CHILD.replace("{body}", body)
    r = subprocess.run([sys.executable, "-c", code, json.dumps(job)], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


TEMPERATURE_JOB = r"""
n, k = job["n"], job["k"]
if job.get("npy"):
    rng = np.random.default_rng(0)
    z = np.lib.format.open_memmap(job["npy"], mode="w+", dtype=np.float32, shape=(n, k))
    y = np.empty(n, dtype=np.int64)
    for a in range(0, n, 500):
        zb, yb = simulated_logits(min(500, n - a), k, seed=a + 1)
        z[a:a + 500] = zb
        y[a:a + 500] = yb
    z.flush(); del z
    import os; os.posix_fadvise(os.open(job["npy"], os.O_RDONLY), 0, 0, os.POSIX_FADV_DONTNEED)
    z = np.load(job["npy"], mmap_mode="r")
    resident = 0  # the file's pages count in the peak as they are read
else:
    z, y = simulated_logits(n, k, seed=2)
    resident = n * k * 4 + n * 8  # already in the base
reset_peak()
base = rss("VmRSS:")
t_pass = None
t = float("inf")
for _ in range(job.get("repeat", 1)):  # interleaved, minimum of each (the machine is shared)
    if job.get("one_pass"):
        t0 = time.perf_counter(); calibrate.metrics.nll_from_logits(z, y)
        t_pass = min(t_pass or float("inf"), time.perf_counter() - t0)
    t0 = time.perf_counter()
    cal = calibrate.TemperatureScaling().fit(z, y)
    t = min(t, time.perf_counter() - t0)
out = dict(seconds=t, one_pass=t_pass, T=cal.temperature_, passes=cal.n_iter_, nll_before=cal.nll_before_,
           nll_after=cal.nll_after_, grad=cal.grad_log_t_, input=n * k * 4 + n * 8, resident=resident)
"""


NUMPY_ONLY_FIT_JOB = r"""
z, y = simulated_logits(job["n"], job["k"], temperature=2.5, seed=2)
calibrate.TemperatureScaling().fit(z, y)
ts = []
for _ in range(job["repeat"]):
    t0 = time.perf_counter(); cal = calibrate.TemperatureScaling().fit(z, y); ts.append(time.perf_counter() - t0)
out = dict(seconds=min(ts), torch_imported="torch" in sys.modules, T=cal.temperature_, passes=cal.n_iter_)
"""


def bench_temperature_numpy_only(n, k, rows, repeat):
    """TemperatureScaling().fit in a fresh process that never imports torch (a saved-logits
    user)."""
    r = child(NUMPY_ONLY_FIT_JOB, {"n": n, "k": k, "repeat": repeat})
    label = f"temperature fit, {n:,} x {k} float32"
    if "error" in r:
        rows.append((label, "calibrate, numpy-only process", None, None, f"failed: {r['error']}"))
        return None
    rows.append((label, "calibrate TemperatureScaling().fit, numpy-only process (torch not imported)", r["seconds"],
                 None, f"T = {r['T']:.6f}, {r['passes']} full pass(es); torch imported: {r['torch_imported']}"))
    return r["seconds"]


def bench_temperature_memory(n, k, rows, checks, budget_mb, npy=None, one_pass=False, label=None):
    job = {"n": n, "k": k, "npy": npy, "one_pass": one_pass, "repeat": 3 if one_pass else 1}
    r = child(TEMPERATURE_JOB, job)
    if npy and os.path.exists(npy):
        os.unlink(npy)
    label = label or f"TemperatureScaling().fit, {n:,} x {k:,} float32" + (" (memory-mapped .npy)" if npy else "")
    if "error" in r:
        rows.append((label, "calibrate", None, None, f"failed: {r['error']}"))
        checks.append(f"{label}: failed ({r['error']})")
        return r
    work = (r["peak"] - r["base"] - (r["input"] - r["resident"])) / 2**20
    note = (f"T = {r['T']:.5f}, {r['passes']} full pass(es), NLL {r['nll_before']:.4f} -> {r['nll_after']:.4f}, "
            f"dNLL/dlogT {r['grad']:.1e}; peak RSS {r['peak'] / 2**20:,.0f} MiB (interpreter and libraries, input "
            f"{r['input'] / 2**20:,.0f} MiB, and {work:,.0f} MiB of working memory)")
    rows.append((label, "calibrate", r["seconds"], None, note))
    msg = f"{label}: working memory {work:,.0f} MiB over the input (target <= {budget_mb}: {mark(work <= budget_mb)})"
    if one_pass and r.get("one_pass"):
        ratio = r["seconds"] / r["one_pass"]
        msg += (f"; {r['seconds']:.1f} s = {ratio:.2f} x one pass over the data (one float64 NLL evaluation, "
                f"{r['one_pass']:.1f} s; minimum of 3 interleaved runs each; target <= 2: {mark(ratio <= 2)})")
    checks.append(msg)
    return r


def mark(ok):
    return "met" if ok else "NOT met"


# ---------------------------------------------------------------------------------- 1. ECE
def bench_ece(n, k, rows, repeat):
    import torch

    p, y = make_probs(n, k, seed=1)
    ref = exact_ece(p, y)
    label = f"ECE 15 bins, {n:,} x {k} float32"
    t_floor, _ = timeit(lambda: p.max(1), repeat)
    t_ours, ours = timeit(lambda: metrics.ece(p, y, 15), repeat)
    rows.append((label, "calibrate.metrics.ece", t_ours, ours - ref, "float64 sums"))
    rows.append((label, "floor: one probs.max(1) pass (numpy)", t_floor, None, ""))
    t_tm = None
    if have("torchmetrics"):
        from torchmetrics.functional.classification import multiclass_calibration_error

        pt, yt = torch.from_numpy(p), torch.from_numpy(y)
        t_tm, v = timeit(lambda: multiclass_calibration_error(pt, yt, num_classes=k, n_bins=15).item(), repeat)
        rows.append((label, "torchmetrics", t_tm, v - ref, "float32 sums"))
    else:
        rows.append((label, "torchmetrics", None, None, "not installed"))
    if have("netcal"):
        from netcal.metrics import ECE

        est = ECE(bins=15)
        t, v = timeit(lambda: float(est.measure(p, y)), max(1, repeat // 2))
        rows.append((label, "netcal", t, v - ref, ""))
    rows.append(relplot_row(p, y, ref, label, repeat))
    return t_ours, t_floor, t_tm, ours - ref


RELPLOT_JOB = r"""
import relplot.metrics as rp
p = np.load(job["p"]); y = np.load(job["y"])
n = p.shape[0]
ts = []
for _ in range(job["repeat"] + 1):
    t0 = time.perf_counter()
    pred = p.argmax(1); conf = p[np.arange(n), pred]
    v = float(rp.binnedECE(conf, (pred == y).astype(float), nbins=15))
    ts.append(time.perf_counter() - t0)
out = dict(seconds=min(ts[1:]), value=v)
"""


def relplot_row(p, y, ref, label, repeat):
    """relplot in a subprocess: importing it sets matplotlib's global style."""
    if not have_in_child("relplot"):
        return (label, "relplot binnedECE", None, None, "not installed")
    with tempfile.TemporaryDirectory() as d:
        np.save(f"{d}/p.npy", p)
        np.save(f"{d}/y.npy", y)
        r = child(RELPLOT_JOB, {"p": f"{d}/p.npy", "y": f"{d}/y.npy", "repeat": repeat})
    if "error" in r:
        return (label, "relplot binnedECE", None, None, r["error"])
    return (label, "relplot binnedECE (incl. top-label extraction; subprocess)", r["seconds"], r["value"] - ref, "")


def have_in_child(mod):
    import importlib.util

    return importlib.util.find_spec(mod) is not None


# ------------------------------------------------------------------------- 2. temperature
def bench_temperature(n, k, rows, repeat):
    import torch
    from scipy.optimize import minimize_scalar

    z, y = simulated_logits(n, k, temperature=2.5, seed=2)
    label = f"temperature fit, {n:,} x {k} float32"
    t, cal = timeit(lambda: calibrate.TemperatureScaling().fit(z, y), repeat)
    ref_t = cal.temperature_
    rows.append((label, "calibrate TemperatureScaling().fit (with NLL before/after, gradient)", t, 0.0,
                 f"T = {cal.temperature_:.6f}, {cal.n_iter_} full pass(es), dNLL/dlogT = {cal.grad_log_t_:.1e}"))
    zt, yt = torch.from_numpy(z), torch.from_numpy(y)

    def scalar_torch():
        def f(log_t):
            with torch.no_grad():
                return torch.nn.functional.cross_entropy(zt / math.exp(log_t), yt).item()
        return math.exp(minimize_scalar(f, bounds=(math.log(0.05), math.log(100)), method="bounded").x)

    tt, v = timeit(scalar_torch, max(1, repeat // 2))
    rows.append((label, "anchor: scipy bounded minimize_scalar over torch float32 CE", tt, v / ref_t - 1, f"T = {v:.6f}"))

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

    tl, v = timeit(lbfgs, 1)
    rows.append((label, "gpleiss-style LBFGS (lr 0.01, 50 iterations)", tl, v / ref_t - 1, f"T = {v:.5f}"))
    try:
        from sklearn.calibration import _TemperatureScaling

        ts, v = timeit(lambda: 1.0 / _TemperatureScaling().fit(z, y).beta_, 1)
        rows.append((label, "scikit-learn _TemperatureScaling (float32 in)", ts, v / ref_t - 1, f"T = {v:.5f}"))
    except ImportError:
        rows.append((label, "scikit-learn _TemperatureScaling", None, None, "not in this scikit-learn"))
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
    out = {}
    for method in ("percentile", "bca"):
        t, ci = timeit(lambda m=method: calibrate.bootstrap_ci("ece", p, y, n_resamples=1000, method=m), repeat)
        rows.append((label, f"calibrate bootstrap_ci(method='{method}')", t, None,
                     f"[{ci.low:.4f}, {ci.high:.4f}], estimate {ci.estimate:.4f}, {ci.scheme} weights"))
        out[method] = t
    if have("calibration"):
        import calibration as unc

        conf, pred = p.max(1).astype(np.float64), p.argmax(1)
        correct = (pred == y).astype(int)
        t2, res = timeit(lambda: unc.get_calibration_error_uncertainties(np.stack([1 - conf, conf], 1), correct,
                                                                          p=1, alpha=0.05, mode="top-label"), 1, 0)
        rows.append((label, "uncertainty-calibration (top-label, its default bins)", t2, None,
                     f"[{res[0]:.4f}, {res[2]:.4f}]"))
    return out["percentile"]


# ------------------------------------------------------------------------------ 4. CLI
def bench_cli_report(n, rows, checks, resamples=1000):
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        z, y = simulated_logits(n, 10, seed=5)
        np.save(f"{d}/z.npy", z)
        np.save(f"{d}/y.npy", y)
        zv, yv = simulated_logits(50_000, 10, seed=6)
        np.savez(f"{d}/val.npz", logits=zv, labels=yv)
        del z, y
        for cmd, extra in (("fit", ["-o", f"{d}/cal.json"]),
                           ("report", ["--fit-on", f"{d}/val.npz", "--methods", "temperature",
                                       "--resamples", str(resamples), "-o", f"{d}/r.html"])):
            argv = [sys.executable, "-m", "calibrate.cli", cmd, f"{d}/z.npy", "--labels", f"{d}/y.npy", *extra]
            code = ("import resource, subprocess, sys, time, json; t0 = time.perf_counter(); "
                    f"r = subprocess.run({argv!r}, capture_output=True, text=True); "
                    "print(json.dumps(dict(rc=r.returncode, err=r.stderr[-300:], s=time.perf_counter() - t0, "
                    "rss=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, "
                    "cpu=resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime "
                    "+ resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime)))")
            out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                                            env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout)
            label = f"`calibrate {cmd}` on a {n:,} x 10 float32 .npy" + (
                f" (+ temperature fitted on 50,000 rows, {resamples} resamples)" if cmd == "report" else "")
            if out["rc"] != 0:
                rows.append((label, "CLI", None, None, f"failed: {out['err']}"))
                continue
            rows.append((label, "CLI (a fresh process, imports included)", out["s"], None,
                         f"peak RSS {out['rss'] / 2**20:,.0f} MiB; CPU time {out['cpu']:.1f} s"))
            if cmd == "report":
                checks.append(f"{label}: {out['s']:.1f} s wall, {out['cpu']:.1f} s CPU (user + system), peak "
                              f"{out['rss'] / 2**30:.2f} GiB (target <= 60 s: {mark(out['s'] <= 60)}"
                              f"{'' if out['s'] <= 60 else ' in wall time on the shared machine; ' + mark(out['cpu'] <= 60) + ' in CPU time'}"
                              f"; <= 1.5 GB: {mark(out['rss'] <= 1.5e9)})")


# ------------------------------------------------------------------------ 5. slow fits
def bench_slow_fits(n, k, rows, checks):
    """Fits that are short by the size rule are timed; long ones are what the CLI refuses up front."""
    from calibrate.calibrators import _budget

    z, y = simulated_logits(n, k, seed=8)
    for method in ("bbq", "matrix", "isotonic"):
        size = _budget.fit_size(method, n, k)
        if size.long:
            rows.append((f"{method} fit, {n:,} x {k}", "calibrate (long by the size rule: the CLI refuses it)",
                         None, None, size.describe()))
            checks.append(f"{method} on {n:,} x {k}: long by the size rule ({size.describe()}); "
                          "the CLI refuses it up front, the API warns and runs it")
            continue
        t0 = time.perf_counter()
        calibrate.get_calibrator(method).fit(z, y)
        t = time.perf_counter() - t0
        rows.append((f"{method} fit, {n:,} x {k}", "calibrate", t, None, f"fitted (size rule: about {size.seconds:.0f} s)"))
        checks.append(f"{method} on {n:,} x {k}: fitted in {t:.1f} s (target <= 60 s: {mark(t <= 60)})")


# ------------------------------------------------------------------------------ profile
def profile(fn, title, calls=3):
    import cProfile
    import pstats

    fn()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(calls):
        fn()
    pr.disable()
    st = pstats.Stats(pr)
    top = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:7]
    out = [f"{title} ({calls} calls; tottime per call, ms):", "", "| function | ms per call |", "|---|---:|"]
    for (file, line, fn_name), (_, _, tottime, _, _) in top:
        where = f"{file.rsplit('/', 2)[-2]}/{file.rsplit('/', 1)[-1]}:{line} {fn_name}" if "/" in file else fn_name
        out.append(f"| `{where}` | {1000 * tottime / calls:.1f} |")
    return out + [""]


PASS_PROFILE_JOB = r"""
from calibrate.calibrators import scaling
z, y = simulated_logits(job["n"], job["k"], temperature=2.5, seed=2)
n = z.shape[0]
def best(f, r=3):
    ts = []
    for _ in range(r):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return min(ts)
def exp_all():
    for a in range(0, n, 4):
        np.exp(np.asarray(z[a:a + 4], dtype=np.float64))
out = {
    "TemperatureScaling().fit (the whole fit)": best(lambda: calibrate.TemperatureScaling().fit(z, y)),
    "its start: float32 passes on 1/8 of the rows (and 1/64 for that one's start)": best(
        lambda: scaling.fit_temperature_nll(z[::8], y[::8], tol=1e-4, sums=scaling._float32_sums,
                                            want_nll_at_1=False)),
    "its one full float64 pass: NLL and 5 derivatives at T, and the NLL at T = 1 (2 exps a value)": best(
        lambda: scaling.nll_derivative_sums(z, y, 0.4, 1.0)),
    "the same pass without the NLL at T = 1 (1 exp a value)": best(lambda: scaling.nll_derivative_sums(z, y, 0.4)),
    "one float64 exp of every value (numpy; the floor of an exact pass)": best(exp_all),
    "the reference 'one pass': metrics.nll_from_logits (1 exp a value + log-softmax)": best(
        lambda: calibrate.metrics.nll_from_logits(z, y)),
}
out["torch_imported"] = "torch" in sys.modules
"""


def profile_temperature_pass(n, k):
    """Where the time of a wide temperature fit goes, in a numpy-only process."""
    r = child(PASS_PROFILE_JOB, {"n": n, "k": k})
    title = (f"TemperatureScaling().fit on {n:,} x {k:,} float32 in a numpy-only process (torch imported: "
             f"{r.get('torch_imported')}; seconds, minimum of 3)")
    if "error" in r:
        return [f"{title}: failed ({r['error']})", ""]
    out = [title + ":", "", "| part | seconds |", "|---|---:|"]
    for key, v in r.items():
        if key not in ("torch_imported", "peak", "base"):
            out.append(f"| {key} | {v:.3f} |")
    return out + [""]


def profile_report(n, resamples=1000):
    """Where the time of the report's bootstrap goes (Poisson weights, as at 1M rows)."""
    from calibrate.report.html import calibration_report
    from calibrate.resampling import bootstrap

    z, y = simulated_logits(n, 10, seed=5)
    cal = calibrate.TemperatureScaling().fit(z[: n // 4], y[: n // 4])
    saved = bootstrap.AUTO_MULTINOMIAL_MAX_ROWS
    bootstrap.AUTO_MULTINOMIAL_MAX_ROWS = 0
    try:
        return profile(lambda: calibration_report(z, y, {"temperature": cal}, n_resamples=resamples),
                       f"calibration_report on {n:,} x 10, one calibrator, {resamples} resamples, Poisson weights", 1)
    finally:
        bootstrap.AUTO_MULTINOMIAL_MAX_ROWS = saved


def render(rows, env, args, seconds, checks, profiles=()):
    lines = ["# Benchmarks", "",
             f"Made by `python -m experiments.benchmarks{' --quick' if args.quick else ''}` on "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {seconds:.0f} s in all.",
             f"Machine: {env['cpu']}, {env['cores']} cores (1-minute load average {env['load_start']:.1f} at the "
             f"start, {os.getloadavg()[0]:.1f} at the end: above 0 means other jobs shared it), no GPU; "
             f"torch CPU capability {env['capability']}, {env['torch_threads']} torch threads; {env['platform']}"
             + (f"; {env['isa_env']}" if env["isa_env"] else "") + ".",
             "Versions: " + ", ".join(f"{a} {b}" for a, b in env["packages"].items() if b) + ", "
             + ", ".join(f"{m} {_version(m)}" for m in ("torchmetrics", "netcal", "relplot", "uncertainty-calibration",
                                                        "dask")) + ".",
             "Times are the minimum of repeated runs (the machine is shared) in one process on the same arrays, "
             "except CLI and memory rows, which run in fresh processes; error columns are against a float64 "
             "reference (ECE: a loop over Guo's bins on float64 confidences; T: relative to calibrate's T).", "",
             "## Goals", ""] + [f"- {c}" for c in checks] + ["",
             "## Measurements", "",
             "| task | implementation | seconds | error vs reference | notes |", "|---|---|---:|---:|---|"]
    for task, impl, t, err, note in rows:
        ts = "—" if t is None else f"{t:.4f}"
        es = "—" if err is None else f"{err:+.2e}"
        lines.append(f"| {task} | {impl} | {ts} | {es} | {note} |")
    lines += [""]
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
    ap.add_argument("--skip-4gb", action="store_true", help="skip the 20,000 x 50,000 memory-mapped fit")
    args = ap.parse_args(argv)
    t0 = time.time()
    env = machine()
    env["load_start"] = os.getloadavg()[0]
    print(f"CPU {env['cpu']}, capability {env['capability']}, {env['torch_threads']} torch threads", flush=True)
    rows, checks, profiles = [], [], []
    q = args.quick
    big = 100_000 if q else 1_000_000
    rep = 3 if q else 5

    t_ece, t_floor, t_tm, err = bench_ece(big, 10, rows, rep)
    checks.append(f"ECE {big:,} x 10 float32: {t_ece * 1000:.1f} ms = {t_ece / t_floor:.2f} x one probs.max(1) pass "
                  f"(target <= 1.5: {mark(t_ece <= 1.5 * t_floor)})"
                  + ("" if t_tm is None else f"; {t_ece / t_tm:.2f} x torchmetrics (target <= 1: {mark(t_ece <= t_tm)})")
                  + f"; error vs float64 loop {err:+.1e} (target: exact: {mark(abs(err) < 1e-12)})")
    p, y = make_probs(big, 10, seed=1)
    profiles.append(profile(lambda: metrics.ece(p, y), f"metrics.ece on {big:,} x 10 float32", 10))
    print("ece done", flush=True)

    t_temp, t_alt = bench_temperature(big, 10, rows, rep)
    t_np = bench_temperature_numpy_only(big, 10, rows, rep)
    checks.append(f"TemperatureScaling().fit {big:,} x 10 float32: {t_temp:.3f} s = {t_temp / t_alt:.2f} x the "
                  f"scipy-bounded torch-CE anchor (target <= 1/3: {mark(t_temp <= t_alt / 3)}; torch imported, as "
                  "the anchor needs it, so torch's exp)"
                  + ("" if t_np is None else f"; in a numpy-only process {t_np:.3f} s = {t_np / t_alt:.2f} x the "
                     f"anchor ({mark(t_np <= t_alt / 3)})"))
    z, y = simulated_logits(big, 10, seed=2)
    profiles.append(profile(lambda: calibrate.TemperatureScaling().fit(z, y), f"TemperatureScaling().fit on {big:,} x 10"))
    print("temperature done", flush=True)

    bench_temperature_memory(5 * big, 10, rows, checks, 256)
    bench_temperature_memory(500 if q else 5_000, 50_000, rows, checks, 512, one_pass=True)
    profiles.append(profile_temperature_pass(200 if q else 1_000, 50_000))
    if not (q or args.skip_4gb):
        bench_temperature_memory(20_000, 50_000, rows, checks, 512, npy="/tmp/calibrate-bench-20000x50000.npy")
    print("memory done", flush=True)

    t_boot = bench_bootstrap(10_000, rows, rep)
    checks.append(f"bootstrap CI of ECE, 10,000 rows, 1000 resamples: {t_boot:.3f} s (target <= 0.2 s: "
                  f"{mark(t_boot <= 0.2)})")
    p, y = make_probs(10_000, 10, seed=3)
    profiles.append(profile(lambda: calibrate.bootstrap_ci("ece", p, y), "bootstrap_ci('ece') on 10,000 rows"))
    print("bootstrap done", flush=True)

    bench_cli_report(big, rows, checks)
    profiles.append(profile_report(big // 5))
    print("cli done", flush=True)
    bench_slow_fits(2_000 if q else 20_000, 1000, rows, checks)
    print("slow fits done", flush=True)

    text = render(rows, env, args, time.time() - t0, checks, profiles)
    from calibrate.io.readers import atomic_write_text

    old = Path(args.out).read_text() if Path(args.out).exists() else ""
    # the sections the other benchmark scripts write (benchmarks_llm, benchmarks_groups, benchmarks_scale_k) are kept
    for title in ("Language-model logs", "Groups", "Large k"):
        sep = f"\n## {title}\n"
        if sep in old:
            rest = old.split(sep, 1)[1]
            nxt = rest.find("\n## ")
            text += "\n\n" + sep.lstrip("\n") + (rest if nxt < 0 else rest[:nxt]).rstrip("\n")
    atomic_write_text(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
