"""Benchmark of per-group metrics with intervals (:func:`calibrate.groups.group_metrics`).

    python -m experiments.benchmarks_groups [--rows 1000000] [--groups 10000] [--resamples 1000]
                                            [--out reports/benchmarks.md] [--no-write]

One fresh process per size runs group_metrics on (n, 10) float32 logits (a model
calibrated at temperature 2: labels drawn from softmax(z / 2)) with n / 100 ... uniform
group codes, after making the data; it reports the seconds of the call (set-up excluded),
the peak resident set of the process (``ru_maxrss``), and the resident set before the
call, so the working memory of the call is the difference. The weights are the
bootstrap's "auto" scheme (multinomial up to 200,000 rows, Poisson beyond), drawn a chunk
of resamples at a time: never an (n, resamples) matrix. The rows replace the section
"## Groups" of ``--out`` (placed before "## Large k" when that section exists).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "## Groups"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

CHILD = r"""
import json, resource, sys, time
import numpy as np
from calibrate.groups import group_metrics

n, k, g, R = (int(a) for a in sys.argv[1:5])
rng = np.random.default_rng(0)
z = rng.standard_normal((n, k), dtype=np.float32) * np.float32(4.0)
y = np.empty(n, dtype=np.int64)
for a in range(0, n, 65536):
    zb = z[a:a + 65536].astype(np.float64) / 2.0
    p = np.exp(zb - zb.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    u = rng.random(p.shape[0])[:, None]
    y[a:a + 65536] = np.minimum((p.cumsum(1) < u).sum(1), k - 1)
groups = rng.integers(0, g, n)
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS"))
before, peak_before = rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0, c0 = time.perf_counter(), time.process_time()
r = group_metrics(z, y, groups, n_resamples=R)
s, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
j = r.metrics.index("ece")
print(json.dumps(dict(seconds=s, cpu=cpu, rss_before=before, peak_before=peak_before, peak=peak,
                      input=z.nbytes + y.nbytes + groups.nbytes, n_groups=len(r.labels), scheme=r.scheme,
                      small=int(r.small.sum()), ece=float(r.overall[j]),
                      worst=r.name(r.worst["ece"]) if r.worst["ece"] is not None else None)))
"""


def machine() -> dict:
    code = ("import json, torch; from calibrate.report.html import environment; e = environment(); "
            "print(json.dumps(dict(cpu=e['cpu'], cores=e['cores'], platform=e['platform'], "
            "capability=torch.backends.cpu.get_cpu_capability(), torch_threads=torch.get_num_threads())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=ENV, check=True)
    return json.loads(out.stdout)


def run(n, k, g, R) -> dict:
    la = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(k), str(g), str(R)], capture_output=True,
                         text=True, cwd=ROOT, env=ENV)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    r = json.loads(out.stdout)
    r["load"] = (la, os.getloadavg()[0])
    return r


def mib(b) -> str:
    return f"{b / 2**20:,.0f} MiB"


def row(n, k, g, R, r) -> str:
    task = f"group_metrics, {n:,} x {k} logits, {g:,} groups, {R:,} resamples"
    if "error" in r:
        return f"| {task} | — | — | failed: {r['error']} |"
    note = (f"{r['cpu']:.1f} s CPU; {r['scheme']} weights; RSS before the call {mib(r['rss_before'])} (input "
            f"{mib(r['input'])}), so {mib(r['peak'] - r['rss_before'])} of working memory; {r['n_groups']:,} groups "
            f"({r['small']:,} under 30 rows); load {r['load'][0]:.1f} -> {r['load'][1]:.1f}")
    return f"| {task} | {r['seconds']:.1f} | {mib(r['peak'])} | {note} |"


def render(lines_rows, env, cmd) -> str:
    return "\n".join([
        MARK, "",
        f"Made by `{cmd}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {env['cpu']}, {env['cores']} cores, torch CPU capability {env['capability']}, "
        f"{env['torch_threads']} torch threads (group_metrics is numpy only: one thread); {env['platform']}. "
        "The 1-minute load average (before -> after) is given beside each figure.",
        "Every row is a fresh process; seconds: the group_metrics call (10 metrics per group, intervals and paired "
        "gap intervals for 6), data set-up excluded; peak RSS: ru_maxrss of the process (data included).", "",
        "| task | seconds | peak RSS | notes |", "|---|---:|---:|---|", *lines_rows, ""])


def write(out: Path, text: str) -> None:
    old = out.read_text() if out.exists() else "# Benchmarks\n"
    if "\n" + MARK + "\n" in old:
        head, rest = old.split("\n" + MARK + "\n", 1)
        tail = rest.split("\n## ", 1)
        new = head.rstrip("\n") + "\n\n" + text + ("\n## " + tail[1] if len(tail) > 1 else "")
    elif "\n## Large k\n" in old:
        head, rest = old.split("\n## Large k\n", 1)
        new = head.rstrip("\n") + "\n\n" + text + "\n## Large k\n" + rest
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = out.with_suffix(".tmp")
    tmp.write_text(new)
    os.replace(tmp, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--out", default="reports/benchmarks.md")
    ap.add_argument("--no-write", action="store_true", help="print the section only")
    args = ap.parse_args(argv)
    env = machine()
    r = run(args.rows, args.classes, args.groups, args.resamples)
    cmd = "python -m experiments.benchmarks_groups" + (" " + " ".join(argv if argv is not None else sys.argv[1:])
                                                       if (argv if argv is not None else sys.argv[1:]) else "")
    text = render([row(args.rows, args.classes, args.groups, args.resamples, r)], env, cmd)
    print(text)
    if not args.no_write:
        write(ROOT / args.out, text)
    return 0 if "error" not in r else 1


if __name__ == "__main__":
    sys.exit(main())
