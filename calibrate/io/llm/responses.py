"""OpenAI-compatible completion responses with token log-probabilities, for questions
answered with an option letter (A, B, C, ...).

One JSON response per line, as the OpenAI API, vLLM, llama.cpp's server and other
OpenAI-compatible servers return it (requested with ``logprobs=true, top_logprobs=N``):
  chat completions   ``choices[0].logprobs.content[i]`` = ``{token, logprob, top_logprobs:
                     [{token, logprob}, ...]}`` for the i-th generated token;
  completions        ``choices[0].logprobs`` = ``{tokens, token_logprobs, top_logprobs:
                     [{token: logprob, ...}, ...]}``.
A line may also be wrapped as the Batch API writes its output: ``{"id", "custom_id",
"response": {"status_code", "body": <response>}, "error"}``.

The rule, per response:
  answer position  the first generated token whose candidates (its top_logprobs and the
                   generated token itself) include a variant of an option letter;
  variants         a token is a variant of letter L when it equals L after removing
                   white space, an opening ``( [ { * _ " '`` (and the ``▁`` / ``Ġ`` word
                   markers) and a closing ``) ] } . : , * _ " '`` -- so ``"A"``, ``" A"``,
                   ``"(A"``, ``"A)"``, ``"A."`` all count for A; letters are case-sensitive;
  option score     the log-sum-exp of its variants' logprobs at that position;
  absent options   ``missing="floor"``: the smallest logprob listed at that position (an upper
                   bound on the absent option's logprob; such rows are counted as floored);
                   ``missing="drop"``: the row is refused and listed with its id;
  normalisation    log-softmax over the options (the logits sum to 1 in probability).
Logprobs of -9999 or less (OpenAI's "very unlikely" placeholder) count as not listed.

Refused (listed with id and reason, never silently dropped): a Batch-API line with an
``error`` or a status other than 200, a response with no generated tokens, a response
with no option letter among its candidates, an option absent under ``missing="drop"``,
a response whose id has no gold answer in the labels file.
Errors (one line, file:line and field): a line that is not JSON (a truncated last line
says so), a response without ``logprobs`` (the request did not ask for them), a gold
answer that is not an option.
"""

from __future__ import annotations

import csv
import math

from calibrate.io.llm._common import (
    NEG_INF,
    BlockBuilder,
    as_float,
    fail,
    get_path,
    json_lines,
    metadata_value,
)

DEFAULT_OPTIONS = ("A", "B", "C", "D")
LABEL_NAMES = ("label", "labels", "answer", "gold", "target")
MISSING = ("floor", "drop")
_LEAD = " \t\r\n([{*_\"'\u2581\u0120"
_TRAIL = " \t\r\n)]}.:,*_\"'"
_SENTINEL = -9999.0
_GONE = object()


def looks_like(obj) -> bool:
    """Whether a parsed line is a completion response or a Batch-API output line."""
    if not isinstance(obj, dict):
        return False
    if isinstance(obj.get("response"), dict) or ("custom_id" in obj and "error" in obj):
        return True
    ch = obj.get("choices")
    return isinstance(ch, list) and (str(obj.get("object", "")).endswith("completion")
                                     or any(isinstance(c, dict) and "logprobs" in c for c in ch))


def variant_of(token: str, options) -> int:
    """Index of the option letter ``token`` is a variant of, or -1."""
    s = token.lstrip(_LEAD).rstrip(_TRAIL)
    try:
        return options.index(s)
    except ValueError:
        return -1


def gold_index(value, options, where):
    """The gold option as an index: an integer, a digit string, or an option letter."""
    path, lineno, name = where
    if isinstance(value, bool) or value is None:
        fail(path, lineno, f"field '{name}': expected the gold option, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        s = value.strip()
        if s in options:
            return options.index(s)
        if s.isdigit():
            value = int(s)
    if isinstance(value, int) and 0 <= value < len(options):
        return value
    fail(path, lineno, f"field '{name}': {value!r} is not one of the options {''.join(options)} "
                       f"(or an index 0..{len(options) - 1})")


def load_labels(path, join_on, labels_key=None, fields=()):
    """Gold answers keyed by id from a CSV (header row) or JSONL file.

    Returns (id -> (gold value, {field: value}, line), label column name). The id column is
    ``join_on``; the label column is ``labels_key`` or the first of label, labels, answer,
    gold, target; any of ``fields`` present as columns are kept as metadata.
    """
    path = str(path)
    out = {}
    if path.lower().endswith(".csv"):
        try:
            f = open(path, newline="", encoding="utf-8")
        except OSError as e:
            fail(path, 0, f"cannot open ({e.strerror or e})")
        with f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            if join_on not in header:
                fail(path, 1, f"no column '{join_on}' to join on (columns: {', '.join(header)})")
            key = labels_key or next((c for c in LABEL_NAMES if c in header), None)
            if key not in header:
                fail(path, 1, f"no label column {labels_key or '/'.join(LABEL_NAMES)!r}")
            rows = ((reader.line_num, r) for r in reader)
            for lineno, r in rows:
                _add_label(out, path, lineno, str(r[join_on]), r[key], {f: r.get(f) for f in fields})
        return out, key
    key = labels_key
    for lineno, r in json_lines(path):
        if not isinstance(r, dict):
            fail(path, lineno, "expected a JSON object per line")
        rid = get_path(r, join_on, _GONE)
        if rid is _GONE:
            fail(path, lineno, f"field '{join_on}': missing (the id to join on)")
        if key is None:
            key = next((c for c in LABEL_NAMES if c in r), None)
            if key is None:
                fail(path, lineno, f"no label field (one of {', '.join(LABEL_NAMES)}, or labels_key)")
        gold = get_path(r, key, _GONE)
        if gold is _GONE:
            fail(path, lineno, f"field '{key}': missing")
        _add_label(out, path, lineno, str(rid), gold, {f: get_path(r, f, None) for f in fields})
    return out, key


def _add_label(out, path, lineno, rid, gold, extra):
    if rid in out:
        fail(path, lineno, f"id {rid!r} appears twice")
    out[rid] = (gold, extra, lineno)


def _unwrap(line, path, lineno):
    """(response body, None) or (None, reason it is refused)."""
    if "response" in line or ("custom_id" in line and "error" in line):
        err = line.get("error")
        if err:
            msg = err.get("message") or err.get("code") if isinstance(err, dict) else err
            return None, f"error: {msg}"
        resp = line.get("response")
        if not isinstance(resp, dict):
            return None, "no response"
        status = resp.get("status_code")
        body = resp.get("body")
        if status not in (200, None):
            detail = get_path(body, "error.message", None) if isinstance(body, dict) else None
            return None, f"status {status}" + (f": {detail}" if detail else "")
        if not isinstance(body, dict):
            fail(path, lineno, "field 'response.body': expected the response object")
        line = body
    if line.get("error"):
        err = line["error"]
        return None, f"error: {err.get('message') if isinstance(err, dict) else err}"
    return line, None


def _positions(body, path, lineno, prefix):
    """Candidate lists, one per generated token: [(token, logprob), ...]."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        fail(path, lineno, f"field '{prefix}choices': expected a non-empty list")
    lp = choices[0].get("logprobs")
    if not isinstance(lp, dict):
        fail(path, lineno, f"field '{prefix}choices[0].logprobs': missing; request logprobs=true "
                           "with top_logprobs >= the number of options")
    content = lp.get("content", _GONE)
    if content is not _GONE:
        if content is None:
            return []
        out = []
        if not isinstance(content, list):
            fail(path, lineno, f"field '{prefix}choices[0].logprobs.content': expected a list of tokens")
        for i, tok in enumerate(content):
            if not isinstance(tok, dict):
                fail(path, lineno, f"field '{prefix}choices[0].logprobs.content[{i}]': expected an object")
            cands = []
            for c in tok.get("top_logprobs") or ():
                if not isinstance(c, dict):
                    fail(path, lineno, f"field '{prefix}choices[0].logprobs.content[{i}].top_logprobs': "
                                       "expected objects {token, logprob}")
                cands.append((c.get("token", ""), as_float(
                    c.get("logprob"), path, lineno, f"field '{prefix}choices[0].logprobs.content[{i}]"
                                                    ".top_logprobs'")))
            t, v = tok.get("token"), tok.get("logprob")
            if isinstance(t, str) and v is not None:
                v = as_float(v, path, lineno, f"field '{prefix}choices[0].logprobs.content[{i}].logprob'")
                if (t, v) not in cands:
                    cands.append((t, v))
            out.append(cands)
        return out
    tops = lp.get("top_logprobs")
    if not isinstance(tops, list):
        fail(path, lineno, f"field '{prefix}choices[0].logprobs': neither 'content' (chat) nor "
                           "'top_logprobs' (completions); request top_logprobs")
    tokens = lp.get("tokens") or []
    token_lps = lp.get("token_logprobs") or []
    out = []
    for i, d in enumerate(tops):
        if d is not None and not isinstance(d, dict):
            fail(path, lineno, f"field '{prefix}choices[0].logprobs.top_logprobs[{i}]': expected {{token: logprob}}")
        cands = [(t, as_float(v, path, lineno, f"field '{prefix}choices[0].logprobs.top_logprobs[{i}]'"))
                 for t, v in (d or {}).items()]
        if i < len(tokens) and i < len(token_lps) and token_lps[i] is not None:
            pair = (tokens[i], as_float(token_lps[i], path, lineno,
                                        f"field '{prefix}choices[0].logprobs.token_logprobs[{i}]'"))
            if pair not in cands:
                cands.append(pair)
        out.append(cands)
    return out


def _logsumexp(vals):
    m = max(vals)
    if m == NEG_INF:
        return NEG_INF
    return m + math.log(sum(math.exp(v - m) for v in vals))


def option_logprobs(positions, options, missing, cache):
    """(log-softmax over the options, floored?) from one response's candidate lists, or
    (None, reason) when refused. ``cache`` maps token -> option index."""
    k = len(options)
    for cands in positions:
        hits = [[] for _ in range(k)]
        listed = []
        found = False
        for tok, v in cands:
            if v <= _SENTINEL:
                continue
            listed.append(v)
            j = cache.get(tok)
            if j is None:
                j = cache[tok] = variant_of(tok, options)
            if j >= 0:
                hits[j].append(v)
                found = True
        if not found:
            continue
        absent = [j for j in range(k) if not hits[j]]
        if absent and missing == "drop":
            return None, f"option {', '.join(options[j] for j in absent)} not among the top logprobs"
        floor = min(listed)
        s = [_logsumexp(h) if h else floor for h in hits]
        z = _logsumexp(s)
        return [x - z for x in s], bool(absent)
    return None, "no option letter among the top logprobs of any generated token"


def iter_blocks(path, *, options=DEFAULT_OPTIONS, missing="floor", labels_key=None, label_map=None,
                labels_path=None, join_on=None, fields=(), block_rows=65536):
    """Yield :class:`ChoiceBlock` s of a JSONL file of responses, ``block_rows`` rows at a time.

    The gold answer comes from ``labels_key`` (a dotted field path in each line) or from
    ``label_map`` (see :func:`load_labels`), matched on the line's ``join_on`` field
    (default: ``custom_id`` when the line has one, else the response ``id``).
    """
    path = str(path)
    options = tuple(options)
    if missing not in MISSING:
        fail(path, 0, f"missing: expected floor or drop, got {missing!r}")
    if len(options) < 2 or len(set(options)) != len(options):
        fail(path, 0, f"options: expected two or more distinct letters, got {options!r}")
    if labels_key is None and label_map is None:
        fail(path, 0, "no gold answers: name the field holding them (labels_key) or a labels "
                      "file joined on an id (labels, join_on)")
    fields = tuple(fields)
    out = BlockBuilder(path, ("model", "file", *fields), block_rows)
    cache = {}
    for lineno, line in json_lines(path):
        if not isinstance(line, dict):
            fail(path, lineno, f"expected a JSON object per line, got {type(line).__name__}")
        body, reason = _unwrap(line, path, lineno)
        if join_on is not None:
            rid = get_path(line, join_on, _GONE)
            if rid is _GONE and body is not None:
                rid = get_path(body, join_on, _GONE)
            if rid is _GONE:
                fail(path, lineno, f"field '{join_on}': missing (the id to join on)")
        else:
            rid = line.get("custom_id", _GONE)
            if rid is _GONE:
                rid = (body or line).get("id", _GONE)
            if rid is _GONE:
                rid = f"line{lineno}"
        rid = str(rid)
        if reason is not None:
            out.dropped.append((rid, f"{path}:{lineno}: {reason}"))
            continue
        if label_map is not None:
            entry = label_map.get(rid)
            if entry is None:
                out.dropped.append((rid, f"{path}:{lineno}: no gold answer for this id in {labels_path}"))
                continue
            gold = gold_index(entry[0], options, (labels_path, entry[2], f"label of {rid}"))
            extra = entry[1]
        else:
            g = get_path(line, labels_key, _GONE)
            if g is _GONE:
                g = get_path(body, labels_key, _GONE)
            if g is _GONE:
                fail(path, lineno, f"field '{labels_key}': missing (the gold answer)")
            gold = gold_index(g, options, (path, lineno, labels_key))
            extra = {}
        prefix = "response.body." if body is not line else ""
        positions = _positions(body, path, lineno, prefix)
        if not positions:
            out.dropped.append((rid, f"{path}:{lineno}: no generated tokens"))
            continue
        scores, floored = option_logprobs(positions, options, missing, cache)
        if scores is None:
            out.dropped.append((rid, f"{path}:{lineno}: {floored}"))
            continue
        out.floored += floored
        vals = []
        for f in fields:
            v = get_path(line, f, _GONE)
            if v is _GONE:
                v = get_path(body, f, _GONE)
            if v is _GONE:
                v = extra.get(f)
            vals.append(metadata_value(v))
        out.add(scores, gold, rid, lineno, [metadata_value(body.get("model")), path, *vals])
        if out.full():
            yield out.take()
    if out.pending():
        yield out.take()
