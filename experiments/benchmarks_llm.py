"""Language-model logs at scale: reading N lm-evaluation-harness sample rows of 4 choices and
``calibrate report`` on N questions (targets at N = 1,000,000: reading >= 50 MB/s of JSONL,
the report within 60 s).

Writes a seeded synthetic ``--log_samples`` file (the later lm-eval shape, as
experiments/benchmark_llm_read.py writes it, about 2.4 kB a row; here the gold option's
log-likelihood is raised so the logits carry a ranking, and 8 subjects) into a temporary folder (never the
repository; removed at the end), ``TMP/logs/model/samples_mmlu_college_biology_<date>.jsonl``,
then, each in a fresh process (imports included):

  read    calibrate.io.llm.read_choice_logits of the whole file;
  sections  after reading (not timed): the same report's split, fit, numbers, figures and
          HTML in-process (calibrate.report.llm), the report without the reading;
  report  calibrate report TMP/logs --format lm-eval -o report.html --json report.json
          --resamples R: a temperature fitted on a seeded half of the questions and
          scored on the other, bootstrap intervals, AURC, LAC / APS sets, figures.

Prints the machine (CPU, core count, torch CPU capability and threads, load average) and
rows in the format of reports/benchmarks.md (| task | implementation | seconds | error vs
reference | notes |), with MB/s, CPU seconds and the peak resident memory of each process
(VmHWM of /proc/self/status: ru_maxrss would carry the parent's peak over exec).

    python -m experiments.benchmarks_llm --rows 1000000      # the goal size
    python -m experiments.benchmarks_llm --rows 20000        # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READ_TARGET_MBS = 50.0
REPORT_TARGET_S = 60.0

_CHILD = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
mode, args = {mode!r}, {args!r}
if mode == "read":
    from calibrate.io.llm import JSON_PARSER, read_choice_logits
    w0, c0 = time.perf_counter(), time.process_time()
    out = read_choice_logits(args[0], "lm-eval")
    info = {{"n": out.n, "k": out.k, "parser": JSON_PARSER, "torch": "torch" in sys.modules}}
elif mode == "sections":
    from calibrate.io.llm import read_choice_logits
    from calibrate.report.html import render_html
    from calibrate.report.llm import llm_report_sections, split_logs
    cl = read_choice_logits(args[0], "lm-eval")
    w0, c0 = time.perf_counter(), time.process_time()
    splits, excluded = split_logs(cl)
    sections, subtitle, data = llm_report_sections(splits, excluded, n_resamples=int(args[1]))
    html = render_html("report", sections, subtitle=subtitle)
    info = {{"n": cl.n, "html_bytes": len(html)}}
else:
    w0, c0 = time.perf_counter(), time.process_time()
    from calibrate.cli import main
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    info = {{"code": code}}
w1, c1 = time.perf_counter(), time.process_time()
peak_kb = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
print("BENCH " + json.dumps({{**info, "wall": w1 - w0, "cpu": c1 - c0,
                              "peak_kb": peak_kb}}))
"""


SUBJECTS = ("anatomy", "astronomy", "college_biology", "college_chemistry", "genetics", "nutrition",
            "physics", "virology")


def write_samples(path: Path, n: int, seed: int = 0) -> None:
    """n synthetic sample rows of 4 choices (seeded): gold index i % 4 ... drawn, its
    log-likelihood raised by 1.5 nats, a 5-shot-sized context repeated per request."""
    import random

    try:
        import orjson

        def dumps(o):
            return orjson.dumps(o) + b"\n"
    except ImportError:
        def dumps(o):
            return (json.dumps(o, separators=(",", ":")) + "\n").encode()
    rng = random.Random(seed)
    question = ("Which of the following statements about the structure of the mitochondrial "
                "inner membrane is correct? ") * 2
    ctx = ("The following are multiple choice questions (with answers) about college biology.\n\n"
           + question + "\nA. one\nB. two\nC. three\nD. four\nAnswer:")
    with open(path, "wb") as f:
        for i in range(n):
            gold = rng.randrange(4)
            lls = [-rng.expovariate(0.5) - 0.2 + (1.5 if j == gold else 0.0) for j in range(4)]
            lls = [min(x, -1e-3) for x in lls]
            best = lls.index(max(lls))
            f.write(dumps({
                "doc_id": i,
                "doc": {"question": question, "subject": SUBJECTS[i % len(SUBJECTS)],
                        "choices": ["one", "two", "three", "four"], "answer": gold},
                "target": str(gold),
                "arguments": {f"gen_args_{j}": {"arg_0": ctx, "arg_1": f" {c}"} for j, c in enumerate("ABCD")},
                "resps": [[[repr(x), "False"]] for x in lls],
                "filtered_resps": [[repr(x), "False"] for x in lls],
                "filter": "none", "metrics": ["acc", "acc_norm"],
                "doc_hash": f"{i:064x}", "prompt_hash": f"{i * 7:064x}", "target_hash": f"{gold:064x}",
                "acc": float(best == gold), "acc_norm": float(best == gold),
            }))


def machine() -> dict:
    from calibrate.report.html import environment

    env = environment()
    out = {"cpu": env["cpu"], "cores": env["cores"], "platform": env["platform"], "capability": "n/a (no torch)",
           "threads": os.cpu_count()}
    try:
        import torch

        out["capability"] = torch.backends.cpu.get_cpu_capability()
        out["threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return out


def in_child(mode: str, args: list) -> dict:
    code = _CHILD.format(repo=str(REPO), mode=mode, args=[str(a) for a in args])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    lines = [x for x in res.stdout.splitlines() if x.startswith("BENCH ")]
    if res.returncode != 0 or not lines:
        raise SystemExit(f"{mode} failed: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
    out = json.loads(lines[-1][6:])
    out["stdout"], out["stderr"] = res.stdout, res.stderr
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--tmp", default=None, help="folder for the synthetic logs (default: the system's temporary folder)")
    a = ap.parse_args(argv)
    m = machine()
    load0 = os.getloadavg()[0]
    print(f"date {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; CPU {m['cpu']}, {m['cores']} cores; torch CPU "
          f"capability {m['capability']}, {m['threads']} threads; 1-minute load average {load0:.1f}; "
          f"{platform.python_implementation()} {platform.python_version()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="calibrate-bench-llm-", dir=a.tmp) as tmp:
        tmp = Path(tmp)
        folder = tmp / "logs" / "model"
        folder.mkdir(parents=True)
        path = folder / "samples_mmlu_college_biology_2024-06-01T00-00-00.000000.jsonl"
        t0 = time.perf_counter()
        write_samples(path, a.rows)
        mb = path.stat().st_size / 1e6
        print(f"wrote {a.rows:,} rows, {mb:,.0f} MB in {time.perf_counter() - t0:.1f} s", flush=True)
        r = in_child("read", [path])
        rep = in_child("report", ["report", tmp / "logs", "--format", "lm-eval", "-o", tmp / "report.html",
                                  "--json", tmp / "report.json", "--resamples", a.resamples])
        sec = in_child("sections", [tmp / "logs", a.resamples])
        if rep["code"] != 0:
            raise SystemExit(f"report failed: {rep['stderr'].strip().splitlines()[-1]}")
        data = json.loads((tmp / "report.json").read_text())
    load1 = os.getloadavg()[0]
    mbs = mb / r["wall"]
    n = a.rows
    print()
    print("| task | implementation | seconds | error vs reference | notes |")
    print("|---|---|---:|---:|---|")
    print(f"| read {n:,} lm-eval rows x 4 choices ({mb:,.0f} MB JSONL) | calibrate.io.llm.read_choice_logits "
          f"(a fresh process, imports excluded) | {r['wall']:.2f} | — | {mbs:.0f} MB/s, {mb / r['cpu']:.0f} MB/s of CPU time (target >= "
          f"{READ_TARGET_MBS:.0f}: {'met' if mbs >= READ_TARGET_MBS else 'NOT met'}); CPU {r['cpu']:.1f} s; peak RSS "
          f"{r['peak_kb'] / 1024:,.0f} MiB; parser {r['parser']} |")
    model = next(iter(data["models"].values()))
    print(f"| `calibrate report` on {n:,} questions x 4 (lm-eval JSONL folder, 1 model; temperature fitted on "
          f"{model['n_fit']:,}, scored on {model['n']:,}; {a.resamples} resamples) | CLI (a fresh process, imports "
          f"included) | {rep['wall']:.2f} | — | target <= {REPORT_TARGET_S:.0f} s: "
          f"{'met' if rep['wall'] <= REPORT_TARGET_S else 'NOT met'}; CPU {rep['cpu']:.1f} s; peak RSS "
          f"{rep['peak_kb'] / 1024:,.0f} MiB; reading included |")
    print(f"| LLM report on {n:,} questions x 4, without the reading (split, temperature, intervals, AURC, "
          f"conformal sets, figures, HTML) | calibrate.report.llm.llm_report_sections + render_html (in-process, "
          f"after reading) | {sec['wall']:.2f} | — | CPU {sec['cpu']:.1f} s; peak RSS {sec['peak_kb'] / 1024:,.0f} MiB "
          "(reading included) |")
    print(f"\n1-minute load average {load0:.1f} at the start, {load1:.1f} at the end (above 0: other jobs shared "
          "the machine)")


if __name__ == "__main__":
    main()
