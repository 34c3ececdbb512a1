"""Benchmarks at the sizes people have: ImageNet's k = 1,000 classes and a 50,000-word vocabulary.

    python -m experiments.benchmarks_scale_k [--out reports/benchmarks.md] [--quick] [--skip-50k]

Every row runs in a fresh process: the CLI rows through ``python -m calibrate.cli`` in a
subprocess (imports included), timed from outside, with the peak resident memory of the
child (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper that runs only it);
the rows on the Python API in a fresh interpreter too (imports excluded, set-up included).
The logits are ImageNet-shaped (:func:`calibrate.io.examples.imagenet_shaped_logits`: about
75 % accuracy, over-confident, miscalibrated differently per class), written to /tmp (a
memory-mapped .npy for the k = 50,000 rows) and deleted afterwards. The machine may be
shared: the 1-minute load average is recorded beside every figure. The rows replace the
section "## Large k" of ``--out`` (the rest of the file, made by experiments.benchmarks,
is kept). --quick: small sizes (a smoke run); --smoke: tiny sizes (seconds per row: the test
suite's check that every row runs); --skip-50k: no k = 50,000 row (they need about 5 GB of
disk in /tmp and minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "## Large k"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def load() -> float:
    return os.getloadavg()[0]


def machine() -> dict:
    code = ("import json, os, torch; from calibrate.report.html import environment; e = environment(); "
            "print(json.dumps(dict(cpu=e['cpu'], cores=e['cores'], platform=e['platform'], packages=e['packages'], "
            "capability=torch.backends.cpu.get_cpu_capability(), torch_threads=torch.get_num_threads())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=ENV, check=True)
    return json.loads(out.stdout)


def cli(args: list[str], timeout=3600) -> dict:
    """``calibrate ARGS`` in a fresh process: wall seconds, CPU seconds, peak RSS (bytes), rc."""
    argv = [sys.executable, "-m", "calibrate.cli", *args]
    code = ("import resource, subprocess, sys, time, json; t0 = time.perf_counter()\n"
            f"try:\n    r = subprocess.run({argv!r}, capture_output=True, text=True, timeout={timeout})\n"
            "    rc, err, out = r.returncode, r.stderr[-1500:], r.stdout[-2000:]\n"
            f"except subprocess.TimeoutExpired:\n    rc, err, out = -9, 'stopped after {timeout} s', ''\n"
            "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(json.dumps(dict(rc=rc, err=err, out=out, "
            "s=time.perf_counter() - t0, rss=u.ru_maxrss * 1024, cpu=u.ru_utime + u.ru_stime)))")
    la = load()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=ENV)
    out = json.loads(r.stdout)
    out["load"] = (la, load())
    return out


def child(body: str, job: dict, timeout=3600) -> dict:
    """``body`` in a fresh interpreter (after ``import numpy as np, calibrate``); it sets ``out``."""
    code = ("import json, sys, time, resource\nimport numpy as np, calibrate\njob = json.loads(sys.argv[1])\n"
            + body + "\nout['rss'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
            "print(json.dumps(out))")
    la = load()
    r = subprocess.run([sys.executable, "-c", code, json.dumps(job)], capture_output=True, text=True, cwd=ROOT,
                       env=ENV, timeout=timeout)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1], "load": (la, load())}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["load"] = (la, load())
    return out


MAKE_NPZ = r"""
from calibrate.io.examples import imagenet_shaped_logits
for name, n, seed in job["files"]:
    z, y = imagenet_shaped_logits(n, job["k"], seed=seed)
    np.savez(name, logits=z, labels=y)
out = {}
"""

MAKE_NPY = r"""
from calibrate.io.examples import imagenet_shaped_logits
z = np.lib.format.open_memmap(job["npy"], mode="w+", dtype=np.float32, shape=(job["n"], job["k"]))
_, y = imagenet_shaped_logits(job["n"], job["k"], seed=job["seed"], out=z)
z.flush(); del z
np.save(job["labels"], y)
out = {}
"""

BOOTSTRAP_FIRST_CALL = r"""
import calibrate.resampling.bootstrap  # the imports are excluded: everything `import calibrate` and this module load
from calibrate.io.examples import simulated_logits
z, y = simulated_logits(job["n"], 10, seed=3)
p = calibrate.metrics.softmax(z).astype(np.float32)
t0 = time.perf_counter()
ci = calibrate.bootstrap_ci("ece", p, y, n_resamples=job["resamples"])
first = time.perf_counter() - t0
t0 = time.perf_counter()
calibrate.bootstrap_ci("ece", p, y, n_resamples=job["resamples"])
second = time.perf_counter() - t0
out = dict(first=first, second=second, low=ci.low, high=ci.high, estimate=ci.estimate, scheme=ci.scheme,
           modules_during=None)
"""

BOOTSTRAP_PROFILE = r"""
import cProfile, pstats, io
import calibrate.resampling.bootstrap
from calibrate.io.examples import simulated_logits
z, y = simulated_logits(job["n"], 10, seed=3)
p = calibrate.metrics.softmax(z).astype(np.float32)
before = set(sys.modules)
pr = cProfile.Profile(); pr.enable()
calibrate.bootstrap_ci("ece", p, y, n_resamples=job["resamples"])
pr.disable()
st = pstats.Stats(pr)
top = sorted(st.stats.items(), key=lambda kv: -kv[1][3])[:12]
rows = []
for (file, line, fn), (_, _, tt, ct, _) in top:
    where = f"{file.rsplit('/', 2)[-2]}/{file.rsplit('/', 1)[-1]}:{line} {fn}" if "/" in file else fn
    rows.append([where, tt, ct])
out = dict(rows=rows, new_modules=len(set(sys.modules) - before))
"""

FIT_PARTS = r"""
# `calibrate fit` itself (calibrate.cli.main, imports included in `total`), with the summary's
# share timed by wrapping what only the summary needs: the record's per-row work inside the
# fit's passes (add: the arg-max), its completion at the fitted T (finish:
# the moment series, and the exact log-sum-exp of the rows its bound refuses) and the NLL/ECE
# from the (n,) arrays (summary)
import contextlib, functools, io
t_start = time.perf_counter()
from calibrate.calibrators import fit_summary as FS
parts = {"add": 0.0, "finish": 0.0, "summary": 0.0, "fit_with_summary": 0.0}
def timed(owner, name):
    f = getattr(owner, name)
    @functools.wraps(f)
    def w(*a, **kw):
        t = time.perf_counter()
        try:
            return f(*a, **kw)
        finally:
            parts[name] += time.perf_counter() - t
    setattr(owner, name, w)
for name in ("add", "finish", "summary"):
    timed(FS.TemperatureFitRecord, name)
recomputed = []
_finish = FS.TemperatureFitRecord.finish
def finish(self, *a, **kw):
    _finish(self, *a, **kw)
    recomputed.append(self.rows_recomputed)
FS.TemperatureFitRecord.finish = finish
timed(FS, "fit_with_summary")
from calibrate.cli import main
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    rc = main(["fit", job["npy"], "--labels", job["labels"], "-o", job["cal"]])
total = time.perf_counter() - t_start
state = json.load(open(job["cal"]))["state"]
summary = parts["add"] + parts["finish"] + parts["summary"]
out = dict(rc=rc, total=total, fit=parts["fit_with_summary"] - summary, summary=summary, parts=parts,
           passes=state["n_iter_"], T=state["temperature_"], printed=printed.getvalue(), recomputed=recomputed)
"""

TEMPERATURE_PASSES = r"""
from calibrate.io.examples import imagenet_shaped_logits
z, y = imagenet_shaped_logits(job["n"], job["k"], seed=7)
t0 = time.perf_counter()
cal = calibrate.TemperatureScaling().fit(z, y)
t_fit = time.perf_counter() - t0
t0 = time.perf_counter()
calibrate.metrics.nll_from_logits(z, y)
t_pass = time.perf_counter() - t0
out = dict(fit=t_fit, one_pass=t_pass, passes=cal.n_iter_, T=cal.temperature_, acc=float(np.mean(z.argmax(1) == y)))
"""


REPORT_PROFILE = r"""
import functools
from calibrate.io.examples import imagenet_shaped_logits
from calibrate.report import beyond, classes, html as H
z, y = imagenet_shaped_logits(job["n"], job["k"], seed=2)
zv, yv = imagenet_shaped_logits(job["n_val"], job["k"], seed=1)
t0 = time.perf_counter()
cal = calibrate.TemperatureScaling().fit(zv, yv)
t_fit = time.perf_counter() - t0
parts = {}
def timed(mod, name):  # wall seconds spent in mod.name (a light wrapper: no profiler overhead)
    f = getattr(mod, name)
    @functools.wraps(f)
    def w(*a, **kw):
        t = time.perf_counter()
        try:
            return f(*a, **kw)
        finally:
            parts[name] = parts.get(name, 0.0) + time.perf_counter() - t
    setattr(mod, name, w)
for name in job["parts"]:
    for mod in (H, beyond, classes):
        if name in vars(mod) and callable(vars(mod)[name]):
            timed(mod, name)
c0, t0 = time.process_time(), time.perf_counter()
sections, sub, data = H.calibration_report_sections(z, y, {"temperature": cal}, n_resamples=1000)
page = H.render_html("r", sections, subtitle=sub)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
out = dict(wall=wall, cpu=cpu, fit=t_fit, parts=parts, own=[])
"""

REPORT_PARTS = {
    "report_digests": "the digests: one block pass per prediction (per-row values, class-wise sums, the shown "
                      "classes' columns)",
    "report_numbers": "the bootstrap of the metrics table and paired differences (one set of weights)",
    "decomposition_from_sums": "the over/under-confidence split",
    "smooth_section": "smoothed reliability diagrams, smooth ECE and band",
    "selective_section": "risk-coverage table, curves and band",
    "reliability_figure": "the reliability diagrams",
    "large_k_class_section": "the per-class section (intervals of the classes shown, panels, heat map)",
    "class_intervals": "  of which the per-class intervals",
    "figure_to_png": "every figure drawn to PNG (inside the sections above)",
    "beyond_report": "the sections beyond ECE (smooth, selective; includes their figures)",
    "render_html": "the HTML page",
}
PROFILE_MARK = "### Where the report's time goes"


# the sizes of each scale: the k = 1,000 report (test rows, fitting rows, k), the memory-mapped
# fit and report (n, k), the temperature fit counted in passes (n, k)
SIZES = {"full": dict(report=(50_000, 25_000, 1000), big=(20_000, 50_000), passes=(5_000, 50_000)),
         "quick": dict(report=(5_000, 2_000, 1000), big=(2_000, 50_000), passes=(500, 50_000)),
         "smoke": dict(report=(600, 300, 30), big=(300, 2_000), passes=(200, 2_000))}


def scale(args) -> dict:
    return SIZES["smoke" if getattr(args, "smoke", False) else "quick" if args.quick else "full"]


def profile_report(sizes: dict) -> list[str]:
    n, n_val, k = sizes["report"]
    r = child(REPORT_PROFILE, {"n": n, "n_val": n_val, "k": k, "parts": list(REPORT_PARTS)})
    head = [PROFILE_MARK, ""]
    if "error" in r:
        return head + [f"The profile failed: {r['error']}", ""]
    lines = head + [f"calibration_report_sections + render_html on {n:,} x {k:,} (ImageNet-shaped, temperature fitted "
                    f"on {n_val:,} rows in {r['fit']:.1f} s beforehand, 1000 resamples) in one fresh process: "
                    f"{r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU; {lstr(r['load'])}. Wall seconds inside each "
                    "part (timed by wrapping the functions; the figure and interval rows are parts of the rows above "
                    "them):", "", "| part | seconds |", "|---|---:|"]
    for fn, what in REPORT_PARTS.items():
        if fn in r["parts"]:
            lines.append(f"| {what} (`{fn}`) | {r['parts'][fn]:.2f} |")
    return lines + [""]


def mark(ok) -> str:
    return "met" if ok else "NOT met"


def gib(b) -> str:
    return f"{b / 2**30:.2f} GiB"


def lstr(la) -> str:
    return f"load {la[0]:.1f} -> {la[1]:.1f}"


def run(args) -> tuple[list, list, list]:
    rows, goals, notes = [], [], []
    sizes = scale(args)
    n_test, n_val, k = sizes["report"]
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="calibrate-scale-k-") as d:
        r = child(MAKE_NPZ, {"k": k, "files": [(f"{d}/test.npz", n_test, 2), (f"{d}/val.npz", n_val, 1)]})
        assert "error" not in r, r
        for methods in () if args.skip_reports else ("temperature", "temperature,vector,dirichlet"):
            label = f"`calibrate report` on {n_test:,} x {k:,} (ImageNet-shaped; fitted on {n_val:,} rows; --methods {methods})"
            res = cli(["report", f"{d}/test.npz", "--fit-on", f"{d}/val.npz", "--methods", methods,
                       "-o", f"{d}/r.html", "--json", f"{d}/r.json"], timeout=args.slow_timeout if "," in methods else 3600)
            if res["rc"] != 0 and "size rule" in res["err"]:  # refused up front, before any fit (no --allow-slow)
                why = res["err"].strip().splitlines()[-1].removeprefix("calibrate: error: ")
                rows.append((label, res["s"], res["rss"], f"refused by the size rule; {lstr(res['load'])}"))
                goals.append(f"{label}: refused up front by the size rule in {res['s']:.1f} s ({why}); "
                             f"{lstr(res['load'])}")
                print(goals[-1], flush=True)
                continue
            if res["rc"] != 0:
                rows.append((label, None, None, f"failed: {res['err']}; {lstr(res['load'])}"))
                goals.append(f"{label}: did not complete ({res['err'][-200:]}; {res['s']:.0f} s, peak "
                             f"{gib(res['rss'])}); {lstr(res['load'])}")
                print(goals[-1], flush=True)
                continue
            size = os.path.getsize(f"{d}/r.html")
            rows.append((label, res["s"], res["rss"], f"CPU {res['cpu']:.1f} s; HTML {size / 1e6:.1f} MB; "
                                                       f"{lstr(res['load'])}"))
            if methods == "temperature":
                goals.append(f"{label}: {res['s']:.1f} s wall, {res['cpu']:.1f} s CPU, peak {gib(res['rss'])}, HTML "
                             f"{size / 1e6:.1f} MB (targets <= 60 s: {mark(res['s'] <= 60)}; <= 2 GB: "
                             f"{mark(res['rss'] <= 2e9)}; HTML <= 25 MB: {mark(size <= 25e6)}); {lstr(res['load'])}")
            else:
                goals.append(f"{label}: {res['s']:.1f} s wall, {res['cpu']:.1f} s CPU, peak {gib(res['rss'])}, HTML "
                             f"{size / 1e6:.1f} MB (no target: stated); {lstr(res['load'])}")
            print(goals[-1], flush=True)

        b = child(BOOTSTRAP_FIRST_CALL, {"n": 10_000, "resamples": 1000})
        label = "bootstrap 95 % CI of ECE, 10,000 rows, 1,000 resamples, first call in a fresh process"
        if "error" in b:
            rows.append((label, None, None, f"failed: {b['error']}"))
        else:
            rows.append((label, b["first"], b["rss"], f"second call {b['second']:.3f} s; [{b['low']:.4f}, "
                                                      f"{b['high']:.4f}], {b['scheme']} weights; {lstr(b['load'])}"))
            goals.append(f"{label}: {b['first']:.3f} s (imports excluded, set-up included; the second call "
                         f"{b['second']:.3f} s; target <= 0.2 s: {mark(b['first'] <= 0.2)}); {lstr(b['load'])}")
            prof = child(BOOTSTRAP_PROFILE, {"n": 10_000, "resamples": 1000})
            if "error" not in prof:
                notes.append(["The first bootstrap_ci call in a fresh process (cumulative seconds; "
                              f"{prof['new_modules']} modules imported during the call; {lstr(prof['load'])}):", "",
                              "| function | own s | cumulative s |", "|---|---:|---:|"]
                             + [f"| `{w}` | {tt:.3f} | {ct:.3f} |" for w, tt, ct in prof["rows"]] + [""])
        print("bootstrap done", flush=True)

        if not args.skip_50k:
            nk = sizes["big"]
            npy, lab = f"{d}/z.npy", f"{d}/y.npy"
            r = child(MAKE_NPY, {"npy": npy, "labels": lab, "n": nk[0], "k": nk[1], "seed": 2})
            assert "error" not in r, r
            inp = os.path.getsize(npy)
            label = f"`calibrate fit` on a {nk[0]:,} x {nk[1]:,} float32 memory-mapped .npy (temperature)"
            res = cli(["fit", npy, "--labels", lab, "-o", f"{d}/cal.json"])
            if res["rc"] != 0:
                rows.append((label, None, None, f"failed: {res['err']}"))
            else:
                rows.append((label, res["s"], res["rss"], f"CPU {res['cpu']:.1f} s; input {gib(inp)} (its pages "
                                                          f"count in the peak as they are read); {lstr(res['load'])}"))
                parts = child(FIT_PARTS, {"npy": npy, "labels": lab, "cal": f"{d}/cal2.json"})
                if "error" in parts:
                    goals.append(f"{label}: {res['s']:.1f} s; the parts failed ({parts['error']})")
                else:
                    ratio = parts["summary"] / parts["fit"]
                    p = parts["parts"]
                    rows.append((f"{label}: the fit and its printed summary, timed inside the CLI", parts["total"],
                                 parts["rss"], f"fit {parts['fit']:.1f} s ({parts['passes']} full passes), summary "
                                 f"{parts['summary']:.2f} s = {100 * ratio:.1f} % of the fit; {lstr(parts['load'])}"))
                    goals.append(
                        f"{label}: {res['s']:.1f} s wall, peak {gib(res['rss'])} (input {gib(inp)}); inside the CLI "
                        f"(calibrate.cli.main in a fresh process, {parts['total']:.1f} s with the imports, peak "
                        f"{gib(parts['rss'])}) the fit takes {parts['fit']:.1f} s ({parts['passes']} full passes) and "
                        f"the printed summary (NLL and top-label ECE before and after, from the fit's per-row values: "
                        f"{p['add']:.2f} s recording them during the passes (the arg-max), {p['finish']:.3f} s "
                        f"for the log-sum-exp at the fitted T (moment series; rows recomputed from their logits: "
                        f"{', '.join(f'{r:,}' for r in parts['recomputed'])} of {nk[0]:,}), {p['summary']:.3f} s for "
                        f"the sums) {parts['summary']:.2f} s = "
                        f"{100 * ratio:.1f} % of the fit (target <= 10 %: {mark(ratio <= 0.10)}); "
                        f"{lstr(parts['load'])}")
            print(goals[-1], flush=True)
            label = f"`calibrate report` on a {nk[0]:,} x {nk[1]:,} float32 memory-mapped .npy"
            if not args.skip_huge_report:
                res = cli(["report", npy, "--labels", lab, "-o", f"{d}/big.html"])
                ok = res["rc"] == 0
                rows.append((label, res["s"] if ok else None, res["rss"], f"rc {res['rc']}; {lstr(res['load'])}"))
                goals.append(f"{label}: {'completed' if ok else 'failed'} in {res['s']:.1f} s, peak "
                             f"{gib(res['rss'])} against input + 1 GB = {gib(inp + 2**30)} (target: "
                             f"{mark(ok and res['rss'] <= inp + 2**30)})")
            else:
                rows.append((label, None, None, "not run (--skip-huge-report)"))
                goals.append(f"{label}: NOT run (--skip-huge-report); target: completes, peak memory <= input + "
                             f"1 GB = {gib(inp + 2**30)}")
            os.unlink(npy)

            n5, k5 = sizes["passes"]
            t = child(TEMPERATURE_PASSES, {"n": n5, "k": k5})
            label = f"TemperatureScaling().fit on {n5:,} x {k5:,} float32 (ImageNet-shaped)"
            if "error" in t:
                rows.append((label, None, None, f"failed: {t['error']}"))
            else:
                rows.append((label, t["fit"], t["rss"], f"{t['passes']} full pass(es), T = {t['T']:.4f}, accuracy "
                                                        f"{t['acc']:.3f}; {lstr(t['load'])}"))
                goals.append(f"{label}: {t['passes']} full pass(es) over the data (target <= 2: "
                             f"{mark(t['passes'] <= 2)}); {t['fit']:.1f} s = {t['fit'] / t['one_pass']:.2f} x one "
                             f"exact NLL pass ({t['one_pass']:.1f} s); {lstr(t['load'])}")
            print(goals[-1], flush=True)
    return rows, goals, notes


def render(rows, goals, notes, env, args, seconds) -> str:
    cmd = "python -m experiments.benchmarks_scale_k" + (" --quick" if args.quick else "") + (
        " --smoke" if args.smoke else "") + (
        " --skip-50k" if args.skip_50k else "")
    lines = [MARK, "",
             f"Made by `{cmd}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {seconds:.0f} s in all.",
             f"Machine: {env['cpu']}, {env['cores']} cores, torch CPU capability {env['capability']}, "
             f"{env['torch_threads']} torch threads; {env['platform']}. The machine was shared: the 1-minute load "
             "average (before -> after) is given beside each figure; a load above the core count means the "
             "figures are slower than on an idle machine.",
             "Every row is a fresh process; CLI rows include the imports. Peak memory: the child's maximum "
             "resident set (ru_maxrss), which counts the pages of a memory-mapped input as they are read.", "",
             "### Goals", ""] + [f"- {g}" for g in goals] + ["", "### Measurements", "",
             "| task | seconds | peak RSS | notes |", "|---|---:|---:|---|"]
    for task, s, rss, note in rows:
        lines.append(f"| {task} | {'—' if s is None else f'{s:.2f}'} | {'—' if rss is None else gib(rss)} | {note} |")
    lines.append("")
    if notes:
        lines += ["### Where the time goes", ""]
        for block in notes:
            lines += block
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/benchmarks.md")
    ap.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (every row runs, in seconds each)")
    ap.add_argument("--skip-50k", action="store_true")
    ap.add_argument("--skip-reports", action="store_true", help="no k = 1,000 report rows")
    ap.add_argument("--profile-report-only", action="store_true",
                    help="only profile the k = 1,000 report, replacing that part of the Large k section")
    ap.add_argument("--slow-timeout", type=int, default=600,
                    help="seconds after which the temperature,vector,dirichlet report is stopped (default 600)")
    ap.add_argument("--skip-huge-report", action="store_true",
                    help="no report on the 20,000 x 50,000 memory-mapped file (run by default)")
    ap.add_argument("--run-huge-report", action="store_true", help=argparse.SUPPRESS)  # the default now
    args = ap.parse_args(argv)
    t0 = time.time()
    env = machine()
    print(f"CPU {env['cpu']}, capability {env['capability']}, {env['torch_threads']} torch threads", flush=True)
    from calibrate.io.readers import atomic_write_text

    out = Path(args.out)
    old = out.read_text() if out.exists() else "# Benchmarks\n"
    if args.profile_report_only:  # replace (or add) the profile at the end of the Large k section
        prof = "\n".join(profile_report(scale(args)))
        kept = old.split("\n" + PROFILE_MARK + "\n", 1)[0].rstrip("\n")
        atomic_write_text(out, kept + "\n\n" + prof + "\n")
        print(prof)
        return
    rows, goals, notes = run(args)
    text = render(rows, goals, notes, env, args, time.time() - t0) + "\n" + "\n".join(profile_report(scale(args)))
    head = old.split("\n" + MARK + "\n", 1)[0].rstrip("\n")
    atomic_write_text(out, head + "\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
