"""Language-model evaluation logs turned into choice logits (n, k) with labels.

Formats (``format=``):
  lm-eval  lm-evaluation-harness ``--log_samples`` files (:mod:`.lmeval`);
  openai   OpenAI-compatible completion responses with top logprobs, bare or as Batch-API
           output lines, for letter answers (:mod:`.responses`);
  table    a JSONL / CSV / Parquet table of per-choice log-probabilities (:mod:`.table`);
  auto     decided per file from its first non-empty line (a ``.csv`` or ``.parquet`` file
           is a table); :attr:`ChoiceLogits.detected` says what was found.

:func:`iter_choice_blocks` reads one file in blocks of rows (memory per block, whatever the
file's size); :func:`read_choice_logits` reads files and folders whole, built on it. Every
refused row is listed (:attr:`ChoiceLogits.dropped`), never dropped silently; every
malformed input is an :class:`~calibrate._core.validation.InputError` naming file, line and
field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibrate._core.validation import InputError
from calibrate.io.llm import lmeval, responses, table
from calibrate.io.llm._common import JSON_PARSER, NEG_INF, ChoiceBlock, first_json_line

FORMATS = ("auto", "lm-eval", "openai", "table")
CHOICE_SCORES = lmeval.CHOICE_SCORES
_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz", ".parquet")

__all__ = [
    "CHOICE_SCORES",
    "FORMATS",
    "JSON_PARSER",
    "ChoiceBlock",
    "ChoiceLogits",
    "detect_format",
    "expand_paths",
    "iter_choice_blocks",
    "read_choice_logits",
]


@dataclass
class ChoiceLogits:
    """Choice logits read from evaluation logs.

    logits: (n, k) float64; row i's options beyond its own count are -inf (padded).
    labels: (n,) int64, the gold option.
    ids: (n,) object, row ids (str): ``<task>/<doc_id>`` for lm-eval, the response's
        ``custom_id`` / ``id`` (or the join key) for responses, the id column for tables.
    meta: column name -> (n,) object array of str: ``task``, ``subject``, ``file`` (lm-eval
        and tables), ``model`` and ``file`` (responses), and each field the caller named.
    n_choices: (n,) int64, each row's own number of options.
    detected: the format read, e.g. ``"lm-eval"``.
    notes: what a reader should know, one line each (padding, floors, refusals, joins).
    dropped: (id, reason) of each refused row.
    floored: rows with an option absent from the top logprobs, set to the floor.
    unmatched_labels: ids in the labels file that no response had.
    """

    logits: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    meta: dict
    n_choices: np.ndarray
    detected: str
    notes: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    floored: int = 0
    unmatched_labels: list = field(default_factory=list)
    paths: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.logits.shape[0]

    @property
    def k(self) -> int:
        return self.logits.shape[1]

    @property
    def padded(self) -> int:
        """Rows with fewer options than k (their last logits are -inf)."""
        return int(np.count_nonzero(self.n_choices < self.k))


def expand_paths(paths) -> list[str]:
    """Files named, and the log files under each folder named (sorted, recursively):
    ``samples_*.jsonl`` when a folder holds lm-evaluation-harness sample logs, else every
    .jsonl / .csv / .parquet file."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(str(q) for q in p.rglob("*") if q.is_file() and str(q).lower().endswith(_SUFFIXES))
            samples = [q for q in found if os.path.basename(q).startswith("samples_")]
            found = samples or found
            if not found:
                raise InputError(f"{p}: no .jsonl, .csv or .parquet files in this folder")
            out.extend(found)
        elif p.exists():
            out.append(str(p))
        else:
            raise InputError(f"{p}: no such file or folder")
    if not out:
        raise InputError("no input files given")
    return out


def detect_format(path) -> str:
    """``"lm-eval"``, ``"openai"`` or ``"table"``, from the file's first non-empty line
    (a .csv or .parquet file is a table)."""
    p = str(path).lower()
    if p.endswith((".csv", ".csv.gz", ".parquet")):
        return "table"
    first = first_json_line(path)
    if first is None:
        raise InputError(f"{path}: empty file, nothing to detect")
    lineno, obj = first
    if isinstance(obj, dict) and "custom_id" in obj and "url" in obj and "method" in obj:
        raise InputError(f"{path}:{lineno}: a Batch API input (requests) file; read its output file")
    if lmeval.looks_like(obj):
        return "lm-eval"
    if responses.looks_like(obj):
        return "openai"
    if isinstance(obj, dict):
        return "table"
    raise InputError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")


def iter_choice_blocks(path, format="auto", *, choice_score="sum", missing="floor", labels_key=None,
                       labels=None, join_on=None, fields=(), options=responses.DEFAULT_OPTIONS,
                       target_delimiter=" ", token_counts_key="num_tokens", block_rows=65536,
                       _label_map=None):
    """Yield :class:`ChoiceBlock` s of one file, ``block_rows`` rows at a time.

    Memory is that of one block (and, for ``labels``, of the labels file). The arguments
    are those of :func:`read_choice_logits`; a block's logits have as many columns as its
    own widest row.
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS[1:]:
        raise InputError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    fields = tuple([fields] if isinstance(fields, str) else fields)
    if fmt == "lm-eval":
        _refuse(path, fmt, missing=missing != "floor", labels=labels is not None, join_on=join_on is not None)
        return lmeval.iter_blocks(path, choice_score=choice_score, target_delimiter=target_delimiter,
                                  token_counts_key=token_counts_key, labels_key=labels_key, fields=fields,
                                  block_rows=block_rows)
    if fmt == "openai":
        _refuse(path, fmt, choice_score=choice_score != "sum")
        label_map = _label_map
        if label_map is None and labels is not None:
            label_map, _ = responses.load_labels(labels, join_on or "custom_id", labels_key, fields)
        if labels is not None and join_on is None:
            join_on = "custom_id"
        return responses.iter_blocks(path, options=options, missing=missing,
                                     labels_key=None if label_map is not None else labels_key,
                                     label_map=label_map, labels_path=str(labels) if labels else None,
                                     join_on=join_on, fields=fields, block_rows=block_rows)
    _refuse(path, fmt, choice_score=choice_score != "sum", missing=missing != "floor",
            labels=labels is not None)
    return table.iter_blocks(path, labels_key=labels_key, id_key=join_on or "id", fields=fields,
                             block_rows=block_rows)


def _refuse(path, fmt, **given):
    bad = [k for k, v in given.items() if v]
    if bad:
        raise InputError(f"{path}: {', '.join(bad)} does not apply to the {fmt} format")


def read_choice_logits(paths, format="auto", *, choice_score="sum", missing="floor", labels_key=None,
                       labels=None, join_on=None, fields=(), options=responses.DEFAULT_OPTIONS,
                       target_delimiter=" ", token_counts_key="num_tokens", block_rows=65536
                       ) -> ChoiceLogits:
    """Read evaluation logs (files, or folders of them) into one :class:`ChoiceLogits`.

    paths: a file or folder, or a list of them (see :func:`expand_paths`).
    format: ``"auto"``, ``"lm-eval"``, ``"openai"`` or ``"table"``; all files must be of one.
    choice_score: lm-eval only: ``"sum"`` (acc), ``"char-norm"`` (acc_norm), ``"byte-norm"``
        (acc_bytes) or ``"token-norm"`` (needs per-choice token counts, ``token_counts_key``).
    missing: openai only: ``"floor"`` or ``"drop"`` for an option absent from the top logprobs.
    labels_key: the field (dotted path) or column holding the gold answer (lm-eval: instead
        of ``target``).
    labels: a CSV / JSONL file of gold answers, joined to responses on ``join_on``
        (default ``custom_id``); for tables ``join_on`` names the id column.
    fields: more fields (dotted paths) to keep as metadata columns.
    options: openai only: the option letters, in order (default A, B, C, D).
    target_delimiter: lm-eval only: the prefix of every continuation that is not part of
        the choice (the task's target_delimiter).
    Rows are in file order, files in the order given (folders sorted). Questions with
    fewer options than the widest are padded with -inf (counted in ``padded``, noted).
    """
    files = expand_paths(paths)
    formats = {f: (detect_format(f) if format == "auto" else format) for f in files}
    kinds = sorted(set(formats.values()))
    if len(kinds) > 1:
        a = next(f for f in files if formats[f] == kinds[0])
        b = next(f for f in files if formats[f] == kinds[1])
        raise InputError(f"{b}: is {kinds[1]} but {a} is {kinds[0]}; read one format at a time")
    fmt = kinds[0]
    label_map = None
    if fmt == "openai" and labels is not None:
        label_map, _ = responses.load_labels(labels, join_on or "custom_id", labels_key,
                                             tuple([fields] if isinstance(fields, str) else fields))
    blocks, dropped, floored = [], [], 0
    for f in files:
        for b in iter_choice_blocks(f, fmt, choice_score=choice_score, missing=missing,
                                    labels_key=labels_key, labels=labels, join_on=join_on, fields=fields,
                                    options=options, target_delimiter=target_delimiter,
                                    token_counts_key=token_counts_key, block_rows=block_rows,
                                    _label_map=label_map):
            dropped.extend(b.dropped)
            floored += b.floored
            if b.n:
                blocks.append(b)
    if not blocks:
        why = f"; {len(dropped)} refused, the first: {dropped[0][1]}" if dropped else ""
        raise InputError(f"{files[0]}: no usable rows{why}")
    out = _concatenate(blocks, fmt)
    out.paths = files
    out.dropped, out.floored = dropped, floored
    _describe(out, fmt, files, label_map, labels)
    return out


def _concatenate(blocks, fmt) -> ChoiceLogits:
    n = sum(b.n for b in blocks)
    k = max(b.logits.shape[1] for b in blocks)
    logits = np.full((n, k), NEG_INF)
    labels = np.empty(n, dtype=np.int64)
    counts = np.empty(n, dtype=np.int64)
    ids = np.empty(n, dtype=object)
    meta = {name: np.empty(n, dtype=object) for name in blocks[0].meta}
    i = 0
    for b in blocks:
        s = slice(i, i + b.n)
        logits[s, : b.logits.shape[1]] = b.logits
        labels[s], counts[s], ids[s] = b.labels, b.n_choices, b.ids
        for name, col in b.meta.items():
            meta[name][s] = col
        i += b.n
    return ChoiceLogits(logits=logits, labels=labels, ids=ids, meta=meta, n_choices=counts, detected=fmt)


def _listing(items, most=5):
    head = ", ".join(map(str, items[:most]))
    return head + (f", ... ({len(items) - most} more)" if len(items) > most else "")


def _describe(out, fmt, files, label_map, labels):
    notes = out.notes
    notes.append(f"read {out.n} rows x {out.k} options from {len(files)} file(s), format {fmt} "
                 f"(JSON parser: {JSON_PARSER})")
    if out.padded:
        notes.append(f"{out.padded} rows have fewer than {out.k} options; their absent options are "
                     "-inf (padded)")
    if out.floored:
        notes.append(f"{out.floored} rows had an option absent from the top logprobs; set to the "
                     "smallest listed logprob, an upper bound (missing=floor)")
    if out.dropped:
        notes.append(f"{len(out.dropped)} rows refused: "
                     + _listing([f"{rid} ({why.split(': ', 1)[-1]})" for rid, why in out.dropped]))
    if label_map is not None:
        seen = set(out.ids.tolist())
        seen.update(rid for rid, _ in out.dropped)
        out.unmatched_labels = [rid for rid in label_map if rid not in seen]
        if out.unmatched_labels:
            notes.append(f"{len(out.unmatched_labels)} ids in {labels} have no response: "
                         + _listing(out.unmatched_labels))
    ids = out.ids.tolist()
    if len(set(ids)) != len(ids):
        seen, dup = set(), []
        for rid in ids:
            if rid in seen and rid not in dup:
                dup.append(rid)
            seen.add(rid)
        notes.append(f"{len(dup)} ids occur more than once: " + _listing(dup))
