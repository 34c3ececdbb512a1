"""Command-line options for language-model evaluation logs (``calibrate fit | evaluate |
report LOGS... --format ...``), and the rule that sends a command to them.

A command reads LLM logs when ``--format`` is given, when there is more than one input,
or when an input is a folder or a ``.jsonl`` / ``.jsonl.gz`` / ``.parquet`` file; every
other input (``.npz``, ``.npy``, ``.pt``, ``.csv``) is read as saved predictions, as before.
"""

from __future__ import annotations

import os

from calibrate._core.validation import InputError
from calibrate.io.llm import CHOICE_SCORES, FORMATS
from calibrate.io.llm.responses import MISSING

LLM_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
SAVED_SUFFIXES = (".npz", ".npy", ".pt")

MODEL_RULE = ("each file's model is the name of the folder that directly holds it (lm-evaluation-harness "
              "writes OUT/<model>/samples_<task>_<date>.jsonl), or the value of --model-by FIELD")
SPLIT_RULE = ("the temperature is fitted on the rows whose --split-by FIELD has the value --fit-split VALUE "
              "(e.g. --split-by doc.split --fit-split validation) and scored on the other rows; without "
              "--split-by (and, for report, without --fit-on) on a seeded half of the question ids, the same "
              "questions for every model")


def add_llm_arguments(p, command: str) -> None:
    """The LLM-log options of ``command`` (fit, evaluate or report) on parser ``p``
    (which already has DATA, --labels, --labels-key and, for report, --fit-on)."""
    p.add_argument("more_logs", nargs="*", metavar="LOGS",
                   help="more evaluation logs (files or folders): language-model logs, see --format")
    g = p.add_argument_group("language-model evaluation logs (LOGS...: files or folders)")
    g.add_argument("--format", choices=FORMATS, default=None,
                   help="lm-eval (lm-evaluation-harness --log_samples JSONL), openai (chat/completions responses "
                        "with top logprobs, bare or Batch API output), table (JSONL/CSV/Parquet of per-choice "
                        "log-probabilities) or auto (from the first line; prints what it found). Given, or with "
                        "a folder, a .jsonl/.parquet file or several inputs, DATA is read as LLM logs")
    g.add_argument("--choice-score", choices=CHOICE_SCORES, default="sum",
                   help="lm-eval: sum (acc, the default), char-norm (acc_norm), byte-norm (acc_bytes) or "
                        "token-norm (needs per-choice token counts)")
    g.add_argument("--missing", choices=MISSING, default="floor",
                   help="openai: an option absent from the top logprobs is set to the smallest listed logprob "
                        "(floor, counted) or its row is refused and listed (drop)")
    g.add_argument("--join-on", default=None, metavar="ID",
                   help="with --labels FILE (CSV/JSONL of gold answers): the id field to join on "
                        "(default custom_id); tables: the id column")
    g.add_argument("--field", action="append", default=[], metavar="FIELD",
                   help="keep this field (dotted path, e.g. doc.category) as a metadata column (repeatable)")
    g.add_argument("--model-by", default=None, metavar="FIELD", help=f"models: {MODEL_RULE}")
    if command in ("fit", "evaluate", "report"):
        g.add_argument("--split-by", default=None, metavar="FIELD",
                       help=f"fit split: {SPLIT_RULE}")
        g.add_argument("--fit-split", default=None, metavar="VALUE[,VALUE]",
                       help="with --split-by: the value(s) of the rows to fit on")
    if command == "fit":
        g.add_argument("--fit-all", action="store_true",
                       help="fit on every row (logs of a validation run); nothing is then scored held out")


def llm_mode(args) -> bool:
    """Whether the command reads language-model logs (see the module's rule)."""
    more = getattr(args, "more_logs", None)
    if more and getattr(args, "format", None) is None:
        saved = [p for p in [args.data, *more] if str(p).lower().endswith(SAVED_SUFFIXES)]
        if saved:
            raise InputError(f"{saved[0]}: saved predictions take one DATA file; several inputs are read as "
                             "language-model logs (give --format, or one file)")
    if getattr(args, "format", None) is not None or more:
        return True
    data = str(getattr(args, "data", "") or "")
    return os.path.isdir(data) or data.lower().endswith(LLM_SUFFIXES)


def log_paths(args) -> list:
    return [args.data, *getattr(args, "more_logs", [])]


def reader_options(args) -> dict:
    """Keyword arguments of :func:`calibrate.io.llm.read_choice_logits` from the options."""
    if getattr(args, "kind", None) is not None:
        raise InputError("--probs / --log-probs / --logits apply to saved predictions, not to LLM logs "
                         "(their log-likelihoods are read as logits)")
    for opt in ("logits_key", "index_col", "class_columns"):
        if getattr(args, opt, None):
            raise InputError(f"--{opt.replace('_', '-')} applies to saved predictions, not to LLM logs")
    fields = list(args.field)
    for extra in (getattr(args, "model_by", None), getattr(args, "split_by", None)):
        if extra and extra not in fields and extra not in ("task", "subject", "file"):
            fields.append(extra)
    return {"format": args.format or "auto", "choice_score": args.choice_score, "missing": args.missing,
            "labels_key": args.labels_key, "labels": args.labels, "join_on": args.join_on, "fields": tuple(fields)}


def fit_split_values(args) -> tuple:
    v = getattr(args, "fit_split", None)
    if v is not None and getattr(args, "split_by", None) is None:
        raise InputError("--fit-split needs --split-by FIELD (the field whose value it names)")
    return tuple(s.strip() for s in v.split(",") if s.strip()) if v else ()
