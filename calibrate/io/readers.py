"""Reading saved predictions safely and explicitly (writing: :mod:`calibrate.io.outputs`).

Saved predictions (DATA) come as:
  .npz  arrays ``logits`` and ``labels`` (names configurable)
  .npy  one (n, k) array; labels from a second .npy file
  .pt   a dict of tensors, read with ``torch.load(weights_only=True)``
  .csv  a header row naming every column; the label column is ``label`` or ``labels`` (or
        the one named by labels_key); an index column is skipped only when named
        (index_col); every other column is a class, in order, or only those named in
        class_columns (then any other column is refused). Blank lines at the end are fine.
Nothing is ever unpickled: ``np.load(allow_pickle=False)``, ``torch.load(weights_only=True)``.
The caller says whether the file holds logits, probabilities or log-probabilities.
Sizes are checked before anything is allocated: an array header (.npy, .npz, .pt) that
claims more than the available memory, or more data than the file holds, is refused.
Every failure is an :class:`InputError` whose one-line message names the file and field.
"""

from __future__ import annotations

import csv
import json
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibrate._core.validation import (
    InputError,
    _gb,
    as_logits,
    check_allocation,
    check_labels,
    to_numpy,
)

_TINY = np.finfo(np.float64).tiny
MAX_JSON_BYTES = 1 << 30  # a calibrator file: matrix scaling at k = 5,000 is about 0.6 GB
MAX_JSON_DEPTH = 64
INDEX_NAMES = {"", "index", "id", "idx", "unnamed: 0", "row", "#"}
LABEL_NAMES = ("label", "labels")


@dataclass
class Predictions:
    """Validated predictions read from a file.

    logits: (n, k) float; for a file of probabilities, their logarithms (valid logits:
        softmax(log p) = p).
    labels: (n,) int64, or None when the file has none.
    """

    logits: np.ndarray
    labels: np.ndarray | None
    path: str
    kind: str  # what the file held: "logits", "probs" or "log_probs"

    @property
    def n(self) -> int:
        return self.logits.shape[0]

    @property
    def k(self) -> int:
        return self.logits.shape[1]

    def require_labels(self) -> np.ndarray:
        if self.labels is None:
            raise InputError(f"{self.path}: no labels found; this command needs labels (see --labels-key / --labels)")
        return self.labels


def _fail(path, msg):
    raise InputError(f"{path}: {msg}")


def check_input_file(path, expected: str) -> None:
    """Refuse an input that is missing or not a regular file (a FIFO or a device such as
    /dev/zero would block or never end)."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        _fail(path, "no such file")
    except OSError as e:
        _fail(path, f"cannot be read ({e.strerror or e})")
    if stat.S_ISDIR(st.st_mode):
        _fail(path, f"is a directory, expected {expected}")
    if not stat.S_ISREG(st.st_mode):
        from calibrate.io.outputs import _kind

        _fail(path, f"is {_kind(st.st_mode)}, not a regular file; expected {expected}")


# ------------------------------------------------------------------ headers, before loading
def _check_header(path, field, fh, total_size=None):
    """Read a .npy header from ``fh`` (not the data) and refuse what cannot be loaded.

    total_size: bytes of the .npy stream (header included), to catch a header that claims
    more data than the file holds.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fh)
        else:
            shape, _, dtype = fmt.read_array_header_2_0(fh)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        _fail(path, f"{field}not a readable .npy array ({' '.join(str(e).split())})")
    if dtype.hasobject:
        _fail(path, f"{field}holds Python objects (pickled); refusing to load it: save a numeric array")
    count = int(np.prod(shape, dtype=object))
    nbytes = count * dtype.itemsize
    stored_bytes = None if total_size is None else total_size - fh.tell()
    if stored_bytes is not None and nbytes > stored_bytes:
        _fail(path, f"{field}the header declares shape {tuple(shape)} {dtype} ({_gb(nbytes)}) but the file holds "
                    f"{_gb(stored_bytes)} of data; the file is truncated or corrupt: save it again")
    where = f"{path}: {field.rstrip(': ')}" if field else str(path)
    # float64 copy (when not float64 already) plus the working arrays of one pass
    need = nbytes + count * 8 * (1 if dtype != np.float64 else 0)
    check_allocation(need, where, f"the array of shape {tuple(shape)} {dtype} in its header")
    return tuple(shape), dtype


def _npz_field(f, zf, path, key):
    if key not in f.files:
        _fail(path, f"missing array '{key}' (found: {', '.join(f.files) or 'none'}); name it with --logits-key/--labels-key")
    member = key + ".npy"
    try:
        info = zf.getinfo(member)
        with zf.open(info) as fh:
            _check_header(path, f"'{key}': ", fh, total_size=info.file_size)
    except KeyError:
        pass
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        _fail(path, f"'{key}' is truncated or corrupt ({e})")
    try:
        return f[key]
    except ValueError as e:
        if "allow_pickle" in str(e):
            _fail(path, f"'{key}' holds Python objects (pickled); refusing to load it: save a numeric array")
        _fail(path, f"'{key}' cannot be read ({e})")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        _fail(path, f"'{key}' is truncated or corrupt ({e})")


def _load_npy(path, mmap=False):
    try:
        with open(path, "rb") as fh:
            _check_header(path, "", fh, total_size=os.fstat(fh.fileno()).st_size)
        # mmap: a (n, k) .npy is memory-mapped read-only, so it is read block by block
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except InputError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "Python objects" in str(e):
            _fail(path, "holds Python objects (pickled); refusing to load it: save a numeric array")
        _fail(path, f"not a readable .npy file ({e})")
    except (EOFError, OSError) as e:
        _fail(path, f"not a readable .npy file ({e})")


# ------------------------------------------------------------------ torch
_TORCH_CAUSE = re.compile(
    r"(Unsupported global: GLOBAL [\w.]+|unsupported GLOBAL [\w.]+|Unsupported operand \d+|"
    r"[\w.]+ was not an allowed global|Trying to call reduce for [\w.]+)", re.I)


def _torch_reason(e: BaseException) -> str:
    """The cause in torch's message, without its advice to load unsafely (``weights_only``
    set to False would run the pickle: calibrate never suggests it)."""
    text = " ".join(str(e).split())
    m = _TORCH_CAUSE.search(text)
    if m:
        return m.group(1)
    if "weights_only" in text or "trusted source" in text:
        return "it holds Python objects that are not tensors"
    first = re.split(r"(?<=[.!?]) ", text, maxsplit=1)[0] if text else type(e).__name__
    return first[:200]


def torch_load_tensors(path):
    """torch.load(weights_only=True) with every failure as a one-line InputError that never
    suggests loading unsafely."""
    import pickle

    from calibrate._core.optional import require_torch

    torch = require_torch(f"{path}: reading a .pt file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        zf = None
    if zf is not None:
        with zf:
            total = sum(i.file_size for i in zf.infolist() if "/data/" in i.filename)
        check_allocation(total, str(path), "the tensors stored in it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        _fail(path, f"refusing to load it: it holds Python objects, not only tensors and plain containers "
                    f"({_torch_reason(e)}); save a dict of tensors: torch.save({{'logits': t, 'labels': y}}, path)")
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, NotImplementedError, AttributeError) as e:
        _fail(path, f"not a readable .pt file ({_torch_reason(e)}); save it again with torch.save")


def _tensor(path, key, t):
    """numpy copy of a dense CPU tensor; meta, sparse and quantized tensors are refused."""
    if hasattr(t, "is_meta"):
        if t.is_meta:
            _fail(path, f"'{key}' is a meta tensor (a shape without data); save the tensor with its values")
        layout = str(getattr(t, "layout", "torch.strided"))
        if layout != "torch.strided":
            _fail(path, f"'{key}' is a {layout.replace('torch.', '')} tensor; save a dense tensor: t.to_dense()")
        if getattr(t, "is_quantized", False):
            _fail(path, f"'{key}' is a quantized tensor; save t.dequantize()")
        if t.is_complex():
            _fail(path, f"'{key}' is a complex tensor; expected real logits")
    try:
        return to_numpy(t, f"{path}: '{key}'")
    except (RuntimeError, NotImplementedError) as e:
        _fail(path, f"'{key}' cannot be read as an array ({_torch_reason(e)})")


def _load_pt(path, logits_key, labels_key):
    obj = torch_load_tensors(path)
    if not isinstance(obj, dict):
        _fail(path, f"expected a dict of tensors with keys '{logits_key}' and '{labels_key}', got {type(obj).__name__}")
    if logits_key not in obj:
        _fail(path, f"missing key '{logits_key}' (found: {', '.join(map(str, obj)) or 'none'}); name it with --logits-key")
    z = _tensor(path, logits_key, obj[logits_key])
    y = _tensor(path, labels_key, obj[labels_key]) if labels_key in obj else None
    return z, y


# ------------------------------------------------------------------ CSV
def _load_csv(path, labels_key=None, index_col=None, class_columns=None, skip_columns=()):
    """(scores (n, c) float64, labels (n,) float64, class column names); rules in the module docstring.
    skip_columns: names of columns skipped unread when present (group columns, read elsewhere)."""
    try:
        fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed below); -sig: a BOM is dropped
    except OSError as e:
        _fail(path, f"not a readable CSV file ({e.strerror or e})")
    with fh:
        try:
            reader = csv.reader(fh)
            header = next(reader, None)
            n_rows, blank_from = 0, None
            for i, r in enumerate(reader):
                if not any(v.strip() for v in r):
                    blank_from = i if blank_from is None else blank_from
                    continue
                if blank_from is not None:
                    _fail(path, f"line {blank_from + 2} is blank, with data after it; remove the blank line")
                n_rows += 1
        except (UnicodeDecodeError, csv.Error) as e:
            _fail(path, f"not a readable CSV file ({e})")
        if header is None or not any(h.strip() for h in header):
            _fail(path, "empty CSV file; expected a header row naming the class columns and a 'label' column")
        names = [h.strip() for h in header]
        if len(names) == 1:
            sep = next((c for c in (";", "\t", "|") if c in names[0]), None)
            if sep is not None:
                _fail(path, f"the header is one column holding {sep!r}; expected comma-separated values: "
                            f"save the file with ',' between the values")
        lab = _csv_label_column(path, names, labels_key)
        skip = {lab}
        index = None
        if index_col is not None:
            if index_col not in names:
                _fail(path, f"no column '{index_col}' (--index-col); the header has: {', '.join(names)}")
            index = names.index(index_col)
            skip.add(index)
        skipped = {names.index(c) for c in skip_columns if c in names and names.index(c) != lab}
        skip |= skipped
        dup = next((h for h in names if names.count(h) > 1), None)
        if dup is not None:
            _fail(path, f"column name '{dup}' appears twice in the header; give every column its own name")
        if class_columns is not None:
            missing = [c for c in class_columns if c not in names]
            if missing:
                _fail(path, f"no column '{missing[0]}' (--class-columns); the header has: {', '.join(names)}")
            cols = [names.index(c) for c in class_columns]
            extra = [names[j] for j in range(len(names)) if j not in skip and j not in cols]
            if extra:
                _fail(path, f"column '{extra[0]}' is neither a class column (--class-columns), the label column "
                            "nor the index column (--index-col); remove it or name it")
        else:
            cols = [j for j in range(len(names)) if j not in skip]
            for j in cols:
                if names[j].lower() in INDEX_NAMES:
                    what = "has no name" if not names[j] else f"'{names[j]}'"
                    _fail(path, f"column {j + 1} ({what}) looks like a row index, not a class; skip it with "
                                f"--index-col '{names[j]}' or remove it (class columns are named by their class)")
        if not cols:
            _fail(path, "no class columns: the header has only the label column")
        if n_rows == 0:
            _fail(path, "no data rows after the header")
        check_allocation(n_rows * len(names) * 8.0, str(path), f"{n_rows:,} rows x {len(names)} columns")
        data = np.empty((n_rows, len(names)), dtype=np.float64)
        fh.seek(0)
        reader = csv.reader(fh)
        next(reader)
        i = 0
        for line, r in enumerate(reader, start=2):
            if i == n_rows:
                break
            if not any(v.strip() for v in r):
                continue
            if len(r) != len(names):
                _fail(path, f"line {line} has {len(r)} fields, the header has {len(names)}; every row needs "
                            "one value per column")
            for j, v in enumerate(r):
                if j == index or j in skipped:
                    continue  # an identifier or a group column: any text, never read as a number
                try:
                    data[i, j] = float(v)
                except ValueError:
                    hint = ("; labels must be integers 0..k-1 (column j of the scores is class j)"
                            if j == lab else
                            f"; if '{names[j]}' is an identifier, not a class, skip it with --index-col '{names[j]}'")
                    _fail(path, f"line {line}, column '{names[j]}': {v.strip()[:40]!r} is not a number{hint}")
            i += 1
    y = data[:, lab]
    z = data[:, cols]
    if class_columns is None:
        _refuse_non_class_columns(path, z, y, [names[j] for j in cols])
    return z, y


def _csv_label_column(path, names, labels_key):
    if labels_key is not None and labels_key not in LABEL_NAMES:
        if labels_key not in names:
            _fail(path, f"no label column '{labels_key}' (--labels-key); the header has: {', '.join(names)}")
        return names.index(labels_key)
    found = [c for c in LABEL_NAMES if c in names]
    if len(found) == 2:
        _fail(path, "both 'label' and 'labels' columns; say which holds the labels with --labels-key")
    if not found:
        _fail(path, f"no label column: expected a column named 'label' (or name it with --labels-key); "
                    f"the header has: {', '.join(names)}")
    return names.index(found[0])


NON_CLASS_NAMES = {"weight", "weights", "sample_weight", "pred", "prediction", "predicted", "argmax",
                   "split", "fold", "file", "filename", "path", "image", "name", "confidence", "conf"}
# an identifier's name: id, uid, uuid, idx, row_num, or ending in _id, -id, " id", .id, Id (sampleId)
ID_NAME = re.compile(r"(?i:^(?:u?id|uuid|idx|row[_ ]?(?:id|num|number))$|[_\- .](?:u?id|uuid|idx)$)|[a-z]Id$")
MIN_ID_ROWS = 20  # fewer rows of whole numbers, all different, may be scores: no guess
LABEL_LIKE_NAMES = {"target", "targets", "y", "class", "true", "truth", "gt", "y_true", "ground_truth"}


def _refuse_non_class_columns(path, z, y, names):
    """Without --class-columns every column but the label (and index) is a class. Refuse the
    columns that plainly are not: a row counter, a known non-class name, a copy of the
    labels, or the predicted class (the arg-max of the other columns)."""
    hint = "list the class columns with --class-columns"
    for name in names:
        low = name.lower()
        if low in LABEL_LIKE_NAMES:
            _fail(path, f"column '{name}' looks like the labels, not a class; name the label column with "
                        f"--labels-key '{name}', or {hint}")
        if low in NON_CLASS_NAMES:
            _fail(path, f"column '{name}' is not a class score (every column but the label and --index-col is "
                        f"taken as a class); remove it, or {hint}")
        if ID_NAME.search(name):
            _fail(path, f"column '{name}' is named like an identifier, not a class; skip it with "
                        f"--index-col '{name}', or {hint}")
    n, c = z.shape
    if n < 3:
        return
    r = np.arange(n, dtype=np.float64)
    for j, name in enumerate(names):
        col = z[:, j]
        if np.array_equal(col, r) or np.array_equal(col, r + 1):
            _fail(path, f"column '{name}' counts the rows ({col[0]:g}, {col[1]:g}, {col[2]:g}, ...): it is an "
                        f"index, not a class; skip it with --index-col '{name}'")
        if n >= MIN_ID_ROWS and np.all(col == np.round(col)) and np.unique(col).size == n:
            _fail(path, f"column '{name}' holds a different whole number on every row ({col[0]:g}, {col[1]:g}, "
                        f"{col[2]:g}, ...): an identifier, not a class score; skip it with --index-col '{name}', "
                        f"or {hint}")
        if np.array_equal(col, y):
            _fail(path, f"column '{name}' is a copy of the label column, not a class score; remove it, or {hint}")
        if c > 2 and np.all(col == np.round(col)):
            others = np.delete(z, j, axis=1)
            if np.array_equal(col, others.argmax(axis=1).astype(np.float64)):
                _fail(path, f"column '{name}' holds the predicted class (the arg-max of the other columns), "
                            f"not a class score; remove it, or {hint}")


def _array_keys(kind, logits_key, labels_key) -> tuple[str, str]:
    """(scores key, labels key) of an .npz / .pt file: logits_key, else "probs" for
    probabilities (kind "probs"), else "logits"; labels_key, else "labels"."""
    return logits_key or ("probs" if kind == "probs" else "logits"), labels_key or "labels"


def _read_npz(path, key, lkey, extra=()):
    """(scores, labels or None, {name: array} of the ``extra`` arrays present) of an .npz file."""
    try:
        f = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        _fail(path, f"not a readable .npz file ({e})")
    if not isinstance(f, np.lib.npyio.NpzFile):
        _fail(path, "is a .npy array saved under a .npz name; rename it to .npy")
    with f, zipfile.ZipFile(path) as zf:
        z = _npz_field(f, zf, path, key)
        y = _npz_field(f, zf, path, lkey) if lkey in f.files else None
        more = {k: _npz_field(f, zf, path, k) for k in extra if k in f.files}
    return z, y, more


def _read_labels_file(labels_path):
    """(labels, the path as the labels' name in messages) of a separate .npy file of labels."""
    lp = str(labels_path)
    check_input_file(lp, "a .npy file of labels")
    y = _load_npy(lp) if lp.endswith(".npy") else _fail(lp, "expected a .npy file of labels")
    return y, lp


def read_predictions(
    path,
    *,
    probs: bool = False,
    kind: str | None = None,
    logits_key: str | None = None,
    labels_key: str | None = None,
    labels_path=None,
    require_labels: bool = True,
    index_col: str | None = None,
    class_columns=None,
    skip_columns=(),
) -> Predictions:
    """Read and validate saved predictions (see the module docstring for formats).

    kind: "logits", "probs", "log_probs", or None for logits with a CalibrationWarning
    when the values look like probabilities or log-probabilities (``probs=True`` is
    kind="probs"). logits_key defaults to "probs" for probabilities, else "logits";
    labels_key to "labels" ("label" or "labels" in a CSV). skip_columns: CSV columns skipped
    unread when present (group columns).
    """
    path = str(path)
    if probs:
        if kind not in (None, "probs"):
            _fail(path, f"both probs=True and kind={kind!r}; say one kind")
        kind = "probs"
    logits_key, lkey = _array_keys(kind, logits_key, labels_key)
    check_input_file(path, "a .npz, .npy, .pt or .csv file")
    ext = Path(path).suffix.lower()
    field = logits_key
    if ext != ".csv" and (index_col is not None or class_columns is not None):
        _fail(path, "--index-col and --class-columns apply to .csv files only")
    if ext == ".npz":
        z, y, _ = _read_npz(path, logits_key, lkey)
    elif ext == ".npy":
        z = _load_npy(path, mmap=True)
        y = None
    elif ext == ".pt":
        z, y = _load_pt(path, logits_key, lkey)
    elif ext == ".csv":
        z, y = _load_csv(path, labels_key, index_col, class_columns, skip_columns)
        field = "class columns"
        lkey = labels_key or "label"
    else:
        _fail(path, f"unknown file type '{ext}'; expected .npz, .npy, .pt or .csv")
    if labels_path is not None:
        y, ylabel = _read_labels_file(labels_path)
    else:
        ylabel = f"{path}: '{lkey}'"
    scores = as_logits(z, f"{path}: '{field}'", kind)
    labels = None
    if y is not None:
        labels = check_labels(y, scores.shape[0], scores.shape[1], ylabel)
    elif require_labels:
        _fail(path, f"missing labels '{lkey}'; name them with --labels-key, or give --labels FILE.npy")
    return Predictions(scores, labels, path, kind or "logits")


def read_json(path, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """A JSON file, refused with one line when missing, too large, too deep or malformed."""
    path = str(path)
    check_input_file(path, "a JSON file")
    try:
        size = os.path.getsize(path)
    except OSError as e:
        _fail(path, f"cannot be read ({e.strerror or e})")
    if size > max_bytes:
        _fail(path, f"is {_gb(size)}, larger than the {_gb(max_bytes)} limit for a JSON file; is it the right file?")
    check_allocation(size * 16.0, path, "parsing this JSON file")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        _fail(path, "not a JSON file: it holds binary data (saved predictions, a .npz, .npy or .pt file?); "
                    "give the JSON file (a calibrator: the one calibrate fit -o wrote)")
    except OSError as e:
        _fail(path, f"cannot be read ({e})")
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        _fail(path, f"nested {depth} levels deep, more than the {MAX_JSON_DEPTH} allowed; not a calibrate file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        _fail(path, f"not valid JSON (line {e.lineno}: {e.msg}); was it truncated?")
    except RecursionError:
        _fail(path, f"nested more than {MAX_JSON_DEPTH} levels deep; not a calibrate file")


def _json_depth(text: str) -> int:
    """The deepest nesting of [ and { outside strings (one pass, no recursion)."""
    depth = best = 0
    for m in re.finditer(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', text):
        c = m.group()
        if c in "[{":
            depth += 1
            best = max(best, depth)
        elif c in "]}":
            depth -= 1
    return best


# ---------------------------------------------------------------------- writing
def check_writable(path, inputs=()) -> Path:
    """Fail early (before any work) if ``path`` cannot be written (see calibrate.io.outputs)."""
    from calibrate.io.outputs import check_output

    return check_output(path, inputs)


def atomic_write_bytes(path, data: bytes, inputs=()) -> None:
    """One file written atomically (calibrate.io.outputs.write_atomic: no signal handlers touched)."""
    from calibrate.io.outputs import write_atomic

    write_atomic(path, data, inputs)


def atomic_write_text(path, text: str, inputs=()) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), inputs)


def atomic_save_npz(path, inputs=(), **arrays) -> None:
    """np.savez_compressed to a temporary file in the same directory, then rename."""
    from calibrate.io.outputs import save_npz

    save_npz(path, inputs, **arrays)
