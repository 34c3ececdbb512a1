"""lm-evaluation-harness ``--log_samples`` files (``samples_<task>_<date>.jsonl``).

One line per question (document). The fields read:

  doc_id          the question's number within the task; the row id is ``<task>/<doc_id>``.
  filtered_resps  one entry per choice (request), each ``[loglikelihood, is_greedy]``;
                  recent versions write every value as a string (``["-4.25", "False"]``).
                  Also read: the nested ``resps`` (``[[[ll, is_greedy]], ...]``, one list of
                  responses per request, the first taken), used when ``filtered_resps`` is
                  absent, and a flat list of log-likelihoods.
  arguments       the requests, one per choice: ``[[context, continuation], ...]`` in early
                  versions, ``{"gen_args_0": {"arg_0": context, "arg_1": continuation}, ...}``
                  in later ones. Read only when the continuation is needed (a length
                  normalisation, or a target given as text).
  target          the gold answer: a JSON number or a string of digits is the index of the
                  choice; any other string is matched against the choices' text (the
                  continuations without the task's target delimiter, then ``doc.choices``).
  doc             the question; ``doc.subject`` (when present) fills the subject column.
  task            when present, the task name; otherwise it comes from the file name.

Per-choice score (``choice_score``):
  sum        the summed log-likelihood of the continuation (lm-evaluation-harness ``acc``).
  char-norm  divided by the choice's length in characters (``acc_norm``).
  byte-norm  divided by the choice's length in UTF-8 bytes (``acc_bytes``).
  token-norm divided by the continuation's number of tokens, read from a per-row list
             ``token_counts_key`` (sample logs do not record token counts).
The choice is the logged continuation less its leading ``target_delimiter`` (lm-evaluation-
harness's default, one space); ``target_delimiter=""`` divides by the whole continuation.
"""

from __future__ import annotations

import os
import re
from functools import partial

from calibrate.io.llm._common import (
    BlockBuilder,
    as_float,
    fail,
    get_path,
    json_lines,
    metadata_value,
)

_INF = float("inf")
_ABSENT = object()
CHOICE_SCORES = ("sum", "char-norm", "byte-norm", "token-norm")
_NAME = re.compile(r"^samples_(?P<task>.+?)(?:_(?P<date>\d{4}-\d{2}-\d{2}T[0-9.:\-]+))?\.jsonl(?:\.gz)?$")


def task_from_filename(path) -> str:
    """``samples_<task>_<date>.jsonl`` -> ``<task>``; any other file name, its stem."""
    name = os.path.basename(str(path))
    m = _NAME.match(name)
    if m:
        return m.group("task")
    for ext in (".gz", ".jsonl", ".json"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name


def looks_like(obj) -> bool:
    """Whether a parsed line is an lm-evaluation-harness sample row."""
    return isinstance(obj, dict) and ("filtered_resps" in obj or "resps" in obj) and (
        "doc_id" in obj or "arguments" in obj or "target" in obj)


def _loglikelihood(entry, path, lineno, j, key):
    """The log-likelihood of request j: the first number inside nested lists."""
    x = entry
    while isinstance(x, list):
        if not x:
            fail(path, lineno, f"field '{key}' [{j}]: empty response")
        x = x[0]
    return as_float(x, path, lineno, f"field '{key}' [{j}]")


def _continuations(row, path, lineno, k):
    args = row.get("arguments")
    if isinstance(args, dict):
        out = []
        for j in range(k):
            req = args.get(f"gen_args_{j}")
            if not isinstance(req, dict) or not isinstance(req.get("arg_1"), str):
                fail(path, lineno, f"field 'arguments.gen_args_{j}.arg_1': expected the continuation text")
            out.append(req["arg_1"])
        if f"gen_args_{k}" in args:
            fail(path, lineno, f"field 'arguments': more requests than the {k} responses")
        return out
    if isinstance(args, list):
        if len(args) != k:
            fail(path, lineno, f"field 'arguments': {len(args)} requests for {k} responses")
        out = []
        for j, req in enumerate(args):
            if not isinstance(req, list) or len(req) < 2 or not isinstance(req[1], str):
                fail(path, lineno, f"field 'arguments' [{j}]: expected [context, continuation]")
            out.append(req[1])
        return out
    fail(path, lineno, "field 'arguments': missing; the continuations are needed for this "
                       "choice score or a text target")


def _choice_text(cont, delimiter):
    return cont[len(delimiter):] if delimiter and cont.startswith(delimiter) else cont


def _choices(row, path, lineno, k, delimiter, cache):
    """The k choices' text (continuations less the delimiter), computed once into ``cache``."""
    if not cache:
        cache.extend(_choice_text(c, delimiter) for c in _continuations(row, path, lineno, k))
    return cache


def _gold(t, name, row, path, lineno, k, choices_of):
    """The gold index from the target value t (field ``name``)."""
    if t is _ABSENT:
        fail(path, lineno, f"field '{name}': missing (the gold answer)")
    if isinstance(t, bool) or t is None:
        fail(path, lineno, f"field '{name}': expected the gold choice, got {t!r}")
    if isinstance(t, list):
        fail(path, lineno, f"field '{name}': several gold answers (a list) are not supported")
    if isinstance(t, float) and t.is_integer():
        t = int(t)
    if isinstance(t, str) and t.strip().isdigit():
        t = int(t.strip())
    if isinstance(t, int):
        if not 0 <= t < k:
            fail(path, lineno, f"field '{name}': index {t} outside the {k} choices")
        return t
    if not isinstance(t, str):
        fail(path, lineno, f"field '{name}': expected an index or the answer text, got {type(t).__name__}")
    choices = choices_of()
    for texts in (choices, [c.strip() for c in choices]):
        want = t if texts is choices else t.strip()
        if want in texts:
            return texts.index(want)
    doc_choices = get_path(row, "doc.choices", None)
    if isinstance(doc_choices, dict):
        doc_choices = doc_choices.get("text")
    if isinstance(doc_choices, list) and t in doc_choices and len(doc_choices) == k:
        return doc_choices.index(t)
    fail(path, lineno, f"field '{name}': {t[:60]!r} is neither an index nor the text of one of the {k} choices")


def iter_blocks(path, *, choice_score="sum", target_delimiter=" ", token_counts_key="num_tokens",
                labels_key=None, fields=(), block_rows=65536):
    """Yield :class:`ChoiceBlock` s of an lm-evaluation-harness sample log, ``block_rows``
    rows at a time (memory per block, not per file). ``labels_key`` (a dotted path such as
    ``doc.answer``) reads the gold answer from another field than ``target``."""
    if choice_score not in CHOICE_SCORES:
        fail(path, 0, f"choice_score: expected one of {', '.join(CHOICE_SCORES)}, got {choice_score!r}")
    path = str(path)
    file_task = task_from_filename(path)
    fields = tuple(fields)
    out = BlockBuilder(path, ("task", "subject", "file", *fields), block_rows)
    target_key = labels_key or "target"
    need_text = choice_score in ("char-norm", "byte-norm")
    for lineno, row in json_lines(path):
        if not isinstance(row, dict):
            fail(path, lineno, f"expected a JSON object per line, got {type(row).__name__}")
        resps = row.get("filtered_resps")
        key = "filtered_resps"
        if resps is None:
            resps, key = row.get("resps"), "resps"
        if not isinstance(resps, list) or not resps:
            fail(path, lineno, "field 'filtered_resps': missing or empty (not a multiple-choice log "
                               "written with --log_samples?)")
        k = len(resps)
        try:
            lls = [float(r[0]) for r in resps] if key == "filtered_resps" else None
        except (TypeError, ValueError, IndexError, KeyError):
            lls = None
        if lls is not None:
            total = sum(lls)
            if total != total or total == _INF:
                lls = None
        if lls is None:
            lls = [_loglikelihood(r, path, lineno, j, key) for j, r in enumerate(resps)]
        if max(lls) == -_INF:
            fail(path, lineno, f"field '{key}': every choice has log-likelihood -inf")
        choices_of = partial(_choices, row, path, lineno, k, target_delimiter, []) if need_text else None
        if need_text:
            texts = choices_of()
            if choice_score == "byte-norm":
                lengths = [len(c.encode("utf-8")) for c in texts]
            else:
                lengths = [len(c) for c in texts]
            for j, n_ in enumerate(lengths):
                if n_ == 0:
                    fail(path, lineno, f"field 'arguments' [{j}]: empty continuation, its length cannot divide")
            scores = [ll / n_ for ll, n_ in zip(lls, lengths)]
        elif choice_score == "token-norm":
            counts = row.get(token_counts_key)
            if not isinstance(counts, list) or len(counts) != k:
                fail(path, lineno, f"choice_score token-norm needs per-choice token counts in field "
                                   f"'{token_counts_key}' ({k} numbers); lm-evaluation-harness sample "
                                   "logs do not record them: use sum, char-norm or byte-norm")
            scores = []
            for j, (ll, c) in enumerate(zip(lls, counts)):
                c = as_float(c, path, lineno, f"field '{token_counts_key}' [{j}]")
                if c <= 0:
                    fail(path, lineno, f"field '{token_counts_key}' [{j}]: expected a positive count, got {c}")
                scores.append(ll / c)
        else:
            scores = lls
        t = row.get("target", _ABSENT) if target_key == "target" else get_path(row, target_key, _ABSENT)
        if type(t) is str and t.isdigit() and int(t) < k:
            label = int(t)
        else:
            label = _gold(t, target_key, row, path, lineno, k, choices_of
                          or partial(_choices, row, path, lineno, k, target_delimiter, []))
        task = row.get("task")
        task = task if isinstance(task, str) and task else file_task
        doc = row.get("doc")
        subject = doc.get("subject") if isinstance(doc, dict) else None
        subject = subject if isinstance(subject, str) and subject else task
        doc_id = row.get("doc_id")
        row_id = f"{task}/{doc_id}" if doc_id is not None else f"{task}/line{lineno}"
        if fields:
            out.add(scores, label, row_id, lineno,
                    (task, subject, path, *[metadata_value(get_path(row, f, None)) for f in fields]))
        else:
            out.add(scores, label, row_id, lineno, (task, subject, path))
        if len(out.scores) >= out.block_rows:
            yield out.take()
    if out.pending():
        yield out.take()
