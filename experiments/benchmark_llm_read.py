"""Reading speed and memory of the lm-evaluation-harness reader (calibrate.io.llm).

Writes a synthetic ``--log_samples`` file of N rows x 4 choices (the later lm-eval shape:
``arguments`` as gen_args_i, string log-likelihoods, a 5-shot-sized context repeated per
request, about 2.4 kB a row) into a temporary folder (never the repository), then reads
its first 100,000 rows and all of it, each in a fresh process:

  stream  iter_choice_blocks: blocks of 65,536 rows, each dropped after use -- the peak
          memory must not grow with the file (the resident memory after each block is
          shown, from /proc/self/statm);
  whole   read_choice_logits: the (n, 4) logits, labels, ids and metadata kept (memory
          grows by those outputs only).

Prints MB/s (file bytes / wall seconds, and / CPU seconds of the reading process),
rows/s, the peak resident memory (resource.getrusage ru_maxrss) and the resident memory
after the imports, with the CPU model, core count, load average, date and JSON parser.
A parse-only line compares json, orjson and (when installed) msgspec on the same rows.

    python experiments/benchmark_llm_read.py                 # 100k and 1M rows
    python experiments/benchmark_llm_read.py --rows 20000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {repo!r})
from calibrate.io.llm import JSON_PARSER, iter_choice_blocks, read_choice_logits
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
path, mode = {path!r}, {mode!r}
w0, c0 = time.perf_counter(), time.process_time()
page = os.sysconf("SC_PAGE_SIZE")
rss_blocks = []
if mode == "stream":
    n = 0
    total = 0.0
    for b in iter_choice_blocks(path, "lm-eval"):
        n += b.n
        total += float(b.logits.sum())
        with open("/proc/self/statm") as f:
            rss_blocks.append(int(f.read().split()[1]) * page // 1024)
else:
    out = read_choice_logits(path, "lm-eval")
    n = out.n
w1, c1 = time.perf_counter(), time.process_time()
print(json.dumps({{"n": n, "wall": w1 - w0, "cpu": c1 - c0, "rss0_kb": rss0,
                   "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   "rss_blocks_kb": rss_blocks, "torch": "torch" in sys.modules,
                   "parser": JSON_PARSER}}))
"""


def _row(i, rng, ctx, question):
    lls = [-rng.expovariate(0.5) for _ in range(4)]
    return {
        "doc_id": i,
        "doc": {"question": question, "subject": "college_biology",
                "choices": ["one", "two", "three", "four"], "answer": i % 4},
        "target": str(i % 4),
        "arguments": {f"gen_args_{j}": {"arg_0": ctx, "arg_1": f" {c}"} for j, c in enumerate("ABCD")},
        "resps": [[[repr(x), "False"]] for x in lls],
        "filtered_resps": [[repr(x), "False"] for x in lls],
        "filter": "none",
        "metrics": ["acc", "acc_norm"],
        "doc_hash": f"{i:064x}",
        "prompt_hash": f"{i * 7:064x}",
        "target_hash": f"{i % 4:064x}",
        "acc": float(lls.index(max(lls)) == i % 4),
        "acc_norm": float(lls.index(max(lls)) == i % 4),
    }


def write_samples(path: Path, n: int, first: Path | None = None, first_n: int = 0) -> None:
    """Write n synthetic rows to path (and the first first_n of them to first)."""
    try:
        import orjson

        def dumps(o):
            return orjson.dumps(o) + b"\n"
    except ImportError:
        def dumps(o):
            return (json.dumps(o, separators=(",", ":")) + "\n").encode()
    rng = random.Random(0)
    question = ("Which of the following statements about the structure of the mitochondrial "
                "inner membrane is correct? ") * 2
    ctx = ("The following are multiple choice questions (with answers) about college biology.\n\n"
           + question + "\nA. one\nB. two\nC. three\nD. four\nAnswer:")
    with open(path, "wb") as f, (open(first, "wb") if first else open(os.devnull, "wb")) as g:
        for i in range(n):
            line = dumps(_row(i, rng, ctx, question))
            f.write(line)
            if i < first_n:
                g.write(line)


def read_in_child(path: Path, mode: str) -> dict:
    code = _CHILD.format(repo=str(REPO), path=str(path), mode=mode)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"reader failed: {res.stderr.strip().splitlines()[-1]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def parse_only(path: Path) -> list[str]:
    """CPU MB/s of parsing each line (and discarding it), per installed parser."""
    parsers = [("json", json.loads)]
    try:
        import orjson

        parsers.append(("orjson", orjson.loads))
    except ImportError:
        pass
    try:
        import msgspec

        parsers.append(("msgspec", msgspec.json.Decoder().decode))
    except ImportError:
        pass
    size = path.stat().st_size
    out = []
    for name, loads in parsers:
        c0 = time.process_time()
        with open(path, "rb") as f:
            for line in f:
                loads(line)
        out.append(f"{name} {size / (time.process_time() - c0) / 1e6:.0f}")
    return out


def _span(kb: list) -> str:
    if not kb:
        return "-"
    return f"{min(kb) / 1024:.0f}-{max(kb) / 1024:.0f} over {len(kb)} blocks"


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000],
                    help="row counts to read (the largest is written; the others are its first rows)")
    ap.add_argument("--dir", default=None, help="folder for the synthetic file (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic files")
    args = ap.parse_args(argv)
    rows = sorted(set(args.rows))
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="calibrate_llm_bench_"))
    if REPO in work.resolve().parents or work.resolve() == REPO:
        raise SystemExit(f"--dir {work}: refusing to write inside the repository")
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"date {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; CPU {cpu_model()}, "
              f"{os.cpu_count()} cores; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
              f"Python {platform.python_version()}")
        paths = {}
        big = work / f"samples_bench_{rows[-1]}_2024-01-01T00-00-00.jsonl"
        t0 = time.perf_counter()
        for n in rows[:-1]:
            paths[n] = work / f"samples_bench_{n}_2024-01-01T00-00-00.jsonl"
        # the smaller files are prefixes of the largest; write them by copying its first lines
        write_samples(big, rows[-1])
        paths[rows[-1]] = big
        for n in rows[:-1]:
            with open(big, "rb") as f, open(paths[n], "wb") as g:
                for i, line in enumerate(f):
                    if i >= n:
                        break
                    g.write(line)
        print(f"wrote {big} ({big.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")
        print("parse only, CPU MB/s, first file: " + ", ".join(parse_only(paths[rows[0]])))
        print(f"{'rows':>9} {'mode':>6} {'MB':>7} {'wall s':>7} {'MB/s':>6} {'MB/s cpu':>8} "
              f"{'rows/s':>8} {'RSS after import MB':>20} {'peak RSS MB':>12}  RSS after each block MB (min-max)")
        for n in rows:
            size = paths[n].stat().st_size
            for mode in ("stream", "whole"):
                r = read_in_child(paths[n], mode)
                assert r["n"] == n, (r["n"], n)
                assert not r["torch"], "torch was imported by the reader"
                print(f"{n:>9} {mode:>6} {size / 1e6:>7.0f} {r['wall']:>7.1f} {size / r['wall'] / 1e6:>6.1f} "
                      f"{size / r['cpu'] / 1e6:>8.1f} {n / r['wall']:>8.0f} {r['rss0_kb'] / 1024:>20.0f} "
                      f"{r['peak_kb'] / 1024:>12.0f}  {_span(r['rss_blocks_kb'])}")
        print(f"JSON parser {r['parser']}; torch imported by the reading process: no; "
              f"load average after {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
