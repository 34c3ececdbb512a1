"""What the language-model readers share: the JSON parser, numbered lines of a file,
dotted field paths, and the block of rows each reader yields.

The parser is orjson when it is installed (``pip install 'calibrate[llm]'``), else the
standard library's json module; both give the same values.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass, field

import numpy as np

from calibrate._core.validation import InputError

try:
    import orjson as _orjson

    loads = _orjson.loads
    JSON_PARSER = "orjson"
except ImportError:
    import json as _json

    loads = _json.loads
    JSON_PARSER = "json"

NEG_INF = float("-inf")


def fail(path, lineno, msg):
    """Raise the one-line InputError ``path:line: msg`` (``path: msg`` without a line)."""
    where = f"{path}:{lineno}" if lineno else f"{path}"
    raise InputError(f"{where}: {msg}")


def open_bytes(path):
    """The file opened for reading bytes; ``.gz`` files are decompressed as they are read."""
    p = str(path)
    try:
        return gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")
    except OSError as e:
        raise InputError(f"{p}: cannot open ({e.strerror or e})") from None


def json_lines(path):
    """Yield ``(line number, parsed object)`` for each non-empty line of a JSONL file.

    One line is held at a time. A line that is not JSON fails with the file and line
    number; the last line of a file that does not end in a newline is called truncated.
    """
    with open_bytes(path) as f:
        lineno = 0
        for raw in f:
            lineno += 1
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                obj = loads(raw)
            except ValueError as e:
                if not raw.strip():
                    continue
                if not raw.endswith(b"\n"):
                    fail(path, lineno, "the last line is incomplete JSON (the file is truncated, "
                                       "or still being written)")
                fail(path, lineno, f"not valid JSON ({str(e).splitlines()[0]})")
            yield lineno, obj


def first_json_line(path):
    """``(line number, object)`` of the first non-empty line, or None for an empty file."""
    for item in json_lines(path):
        return item
    return None


_MISSING = object()


def get_path(obj, dotted: str, default=_MISSING):
    """The value at a dotted field path (``"doc.subject"``, ``"choices.0.logprobs"``)."""
    cur = obj
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return default
    return cur


def has_path(obj, dotted: str) -> bool:
    return get_path(obj, dotted) is not _MISSING


def as_float(x, path, lineno, what):
    """A log-likelihood as a float: a JSON number or the string lm-evaluation-harness writes."""
    if isinstance(x, bool) or x is None:
        fail(path, lineno, f"{what}: expected a number, got {x!r}")
    try:
        v = float(x)
    except (TypeError, ValueError):
        fail(path, lineno, f"{what}: expected a number, got {_short(x)}")
    if math.isnan(v) or v == math.inf:
        fail(path, lineno, f"{what}: expected a log-probability, got {v}")
    return v


def _short(x, n=60):
    s = repr(x)
    return s if len(s) <= n else s[: n - 3] + "..."


def metadata_value(v) -> str:
    """A metadata cell as a string ('' for a missing or null value)."""
    if v is None or v is _MISSING:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return _short(v, 200)


@dataclass
class ChoiceBlock:
    """Consecutive rows of one file, as a reader yields them.

    logits: (m, kb) float64, -inf past a row's own number of choices.
    n_choices: (m,) int64, each row's number of choices (<= kb).
    labels: (m,) int64 gold index.
    ids: (m,) object, row ids (str).
    lines: (m,) int64, the line (or row) each came from.
    meta: name -> (m,) object array of str.
    dropped: (id, reason) for rows of these lines that were refused.
    floored: rows whose missing options were set to the floor.
    """

    path: str
    logits: np.ndarray
    n_choices: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    lines: np.ndarray
    meta: dict
    dropped: list = field(default_factory=list)
    floored: int = 0

    @property
    def n(self) -> int:
        return self.logits.shape[0]


class BlockBuilder:
    """Collects rows and turns every ``block_rows`` of them into a :class:`ChoiceBlock`."""

    def __init__(self, path, meta_names, block_rows):
        if int(block_rows) < 1:
            raise InputError(f"block_rows: expected a positive integer, got {block_rows!r}")
        self.path = str(path)
        self.meta_names = list(meta_names)
        self.block_rows = int(block_rows)
        self._reset()

    def _reset(self):
        self.scores, self.labels, self.ids, self.lines, self.meta = [], [], [], [], []
        self.dropped, self.floored = [], 0

    def add(self, scores, label, row_id, lineno, meta_values):
        """One row: its k scores, gold index, id, line and metadata (a tuple, in meta_names order)."""
        self.scores.append(scores)
        self.labels.append(label)
        self.ids.append(row_id)
        self.lines.append(lineno)
        self.meta.append(meta_values)

    def full(self) -> bool:
        return len(self.scores) >= self.block_rows

    def pending(self) -> bool:
        return bool(self.scores or self.dropped)

    def take(self) -> ChoiceBlock:
        m = len(self.scores)
        counts = np.fromiter((len(s) for s in self.scores), dtype=np.int64, count=m)
        kb = int(counts.max()) if m else 0
        if m and int(counts.min()) == kb:
            logits = np.array(self.scores, dtype=np.float64).reshape(m, kb)
        else:
            logits = np.full((m, kb), NEG_INF)
            for i, s in enumerate(self.scores):
                logits[i, : len(s)] = s
        ids = np.empty(m, dtype=object)
        ids[:] = self.ids
        meta = {}
        columns = list(zip(*self.meta)) if m else [()] * len(self.meta_names)
        for name, vals in zip(self.meta_names, columns):
            col = np.empty(m, dtype=object)
            col[:] = vals
            meta[name] = col
        block = ChoiceBlock(
            path=self.path,
            logits=logits,
            n_choices=counts,
            labels=np.array(self.labels, dtype=np.int64).reshape(m),
            ids=ids,
            lines=np.array(self.lines, dtype=np.int64).reshape(m),
            meta=meta,
            dropped=self.dropped,
            floored=self.floored,
        )
        self._reset()
        return block
