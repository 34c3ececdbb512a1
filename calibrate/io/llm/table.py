"""Plain tables of per-choice log-probabilities: JSONL, CSV (header row) or Parquet.

One row per question:
  label    the gold choice, in the column ``labels_key`` or the first of label, labels,
           answer, gold, target: an index (0-based), or the name of a choice column
           (``"B"`` when the choice columns are A, B, C, D);
  id       the column ``id_key`` (default ``id``) when present, else ``<file>:<line>``;
  task, subject   kept as metadata when present, and any column named in ``fields``;
  choices  a list-valued column (logprobs, log_probs, logits or scores; rows may have
           different lengths) or, without one, every other column in order. An empty
           cell, null or -inf is an absent choice (-inf).
Values are log-probabilities or any logits (their softmax is the probability).
"""

from __future__ import annotations

import csv
import os

from calibrate._core.optional import MissingDependencyError
from calibrate.io.llm._common import (
    NEG_INF,
    BlockBuilder,
    as_float,
    fail,
    json_lines,
    metadata_value,
)

LABEL_NAMES = ("label", "labels", "answer", "gold", "target")
LIST_NAMES = ("logprobs", "log_probs", "logits", "scores")
META_NAMES = ("task", "subject")


class _Spec:
    """Which column is what, fixed by the first row (or the CSV header)."""

    def __init__(self, path, lineno, columns, sample, labels_key, id_key, fields):
        columns = list(columns)
        self.label = labels_key or next((c for c in LABEL_NAMES if c in columns), None)
        if self.label not in columns:
            fail(path, lineno, f"no label column {labels_key or '/'.join(LABEL_NAMES)!r} "
                               f"(columns: {', '.join(map(str, columns))})")
        self.id = id_key if id_key in columns else None
        self.fields = tuple(fields)
        used = {self.label, self.id, *META_NAMES, *self.fields}
        self.list = next((c for c in LIST_NAMES if c in columns
                          and (sample is None or isinstance(sample.get(c), list))), None)
        self.choices = [] if self.list else [c for c in columns if c not in used]
        if not self.list and len(self.choices) < 2:
            fail(path, lineno, "expected two or more choice columns (or a list column "
                               f"{'/'.join(LIST_NAMES)})")


def _score(v, path, lineno, name):
    if v is None or v == "":
        return NEG_INF
    return as_float(v, path, lineno, f"field '{name}'")


def _row(spec, row, path, lineno, base):
    if spec.list:
        vals = row.get(spec.list)
        if not isinstance(vals, list) or not vals:
            fail(path, lineno, f"field '{spec.list}': expected a non-empty list of log-probabilities")
        scores = [_score(v, path, lineno, f"{spec.list}[{j}]") for j, v in enumerate(vals)]
        names = None
    else:
        scores = [_score(row.get(c), path, lineno, c) for c in spec.choices]
        names = spec.choices
        while len(scores) > 1 and scores[-1] == NEG_INF:
            scores.pop()
    k = len(scores)
    g = row.get(spec.label)
    if isinstance(g, str):
        s = g.strip()
        if names and s in names:
            g = names.index(s)
        elif s.lstrip("-").isdigit():
            g = int(s)
    if isinstance(g, float) and g.is_integer():
        g = int(g)
    if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < k:
        fail(path, lineno, f"field '{spec.label}': {g!r} is not a choice index 0..{k - 1}"
                           + (" or a choice column" if names else ""))
    rid = row.get(spec.id) if spec.id else None
    rid = metadata_value(rid) if rid is not None else f"{base}:{lineno}"
    meta = [metadata_value(row.get("task")), metadata_value(row.get("subject")), path,
            *(metadata_value(row.get(f)) for f in spec.fields)]
    return scores, g, rid, meta


def iter_blocks(path, *, labels_key=None, id_key="id", fields=(), block_rows=65536):
    """Yield :class:`ChoiceBlock` s of a JSONL, CSV or Parquet table, ``block_rows`` rows at a time."""
    path = str(path)
    base = os.path.basename(path)
    low = path.lower()
    out = BlockBuilder(path, ("task", "subject", "file", *fields), block_rows)
    if low.endswith(".csv") or low.endswith(".csv.gz"):
        rows = _csv_rows(path)
    elif low.endswith(".parquet"):
        rows = _parquet_rows(path, block_rows)
    else:
        rows = json_lines(path)
    spec = None
    for lineno, row in rows:
        if not isinstance(row, dict):
            fail(path, lineno, f"expected a JSON object per line, got {type(row).__name__}")
        if spec is None:
            spec = _Spec(path, lineno, row.keys(), row, labels_key, id_key, fields)
        scores, g, rid, meta = _row(spec, row, path, lineno, base)
        out.add(scores, g, rid, lineno, meta)
        if out.full():
            yield out.take()
    if out.pending():
        yield out.take()


def _csv_rows(path):
    import gzip

    try:
        f = gzip.open(path, "rt", newline="", encoding="utf-8") if path.endswith(".gz") else \
            open(path, newline="", encoding="utf-8")
    except OSError as e:
        fail(path, 0, f"cannot open ({e.strerror or e})")
    with f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            return
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                fail(path, reader.line_num, f"{len(row)} cells for {len(header)} columns")
            yield reader.line_num, dict(zip(header, row))


def _parquet_rows(path, block_rows):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own error types for a damaged file
        fail(path, 0, f"not a readable Parquet file ({str(e).splitlines()[0]})")
    i = 0
    for batch in pf.iter_batches(batch_size=block_rows):
        for row in batch.to_pylist():
            i += 1
            yield i, row
