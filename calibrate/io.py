"""Reading saved predictions safely and explicitly; writing outputs atomically.

Saved predictions (DATA) come as:
  .npz  arrays ``logits`` and ``labels`` (names configurable)
  .npy  one (n, k) array; labels from a second .npy file
  .pt   a dict of tensors, read with ``torch.load(weights_only=True)``
  .csv  a header row, one column per class and a label column
Nothing is ever unpickled: ``np.load(allow_pickle=False)``, ``torch.load(weights_only=True)``.
The caller says whether the file holds logits or probabilities; it is never guessed.
Every failure is an :class:`InputError` whose one-line message names the file and field.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validation import InputError, check_labels, check_scores, to_numpy

_TINY = np.finfo(np.float64).tiny


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
    kind: str  # what the file held: "logits" or "probs"

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


def _npz_field(f, path, key):
    if key not in f.files:
        _fail(path, f"missing array '{key}' (found: {', '.join(f.files) or 'none'}); name it with --logits-key/--labels-key")
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
        # mmap: a (n, k) .npy is memory-mapped read-only, so it is read block by block
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as e:
        if "allow_pickle" in str(e) or "Python objects" in str(e):
            _fail(path, "holds Python objects (pickled); refusing to load it: save a numeric array")
        _fail(path, f"not a readable .npy file ({e})")
    except (EOFError, OSError) as e:
        _fail(path, f"not a readable .npy file ({e})")


def _load_pt(path, logits_key, labels_key):
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unpickling refused"
        _fail(path, f"refusing to load content other than tensors and plain containers (weights_only=True): {first}")
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _fail(path, f"not a readable .pt file ({msg})")
    if not isinstance(obj, dict):
        _fail(path, f"expected a dict of tensors with keys '{logits_key}' and '{labels_key}', got {type(obj).__name__}")
    if logits_key not in obj:
        _fail(path, f"missing key '{logits_key}' (found: {', '.join(map(str, obj)) or 'none'}); name it with --logits-key")
    z = to_numpy(obj[logits_key], f"{path}: '{logits_key}'")
    y = to_numpy(obj[labels_key], f"{path}: '{labels_key}'") if labels_key in obj else None
    return z, y


def _load_csv(path, labels_key):
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as e:
        _fail(path, f"not a readable CSV file ({e})")
    if not rows:
        _fail(path, "empty CSV file; expected a header row, one column per class and a label column")
    header = [h.strip() for h in rows[0]]
    names = [labels_key, "label", "labels", "y", "target"]
    lab = next((header.index(c) for c in names if c in header), None)
    if lab is None:
        _fail(path, f"no label column (looked for '{labels_key}'); name it with --labels-key")
    body = rows[1:]
    if not body:
        _fail(path, "no data rows after the header")
    data = np.empty((len(body), len(header)), dtype=np.float64)
    for i, r in enumerate(body):
        if len(r) != len(header):
            _fail(path, f"line {i + 2} has {len(r)} fields, the header has {len(header)} (truncated file?)")
        try:
            data[i] = [float(v) for v in r]
        except ValueError:
            _fail(path, f"line {i + 2} holds a value that is not a number")
    y = data[:, lab]
    z = np.delete(data, lab, axis=1)
    return z, y


def read_predictions(
    path,
    *,
    probs: bool = False,
    logits_key: str | None = None,
    labels_key: str = "labels",
    labels_path=None,
    require_labels: bool = True,
) -> Predictions:
    """Read and validate saved predictions (see the module docstring for formats).

    logits_key defaults to "probs" when ``probs`` is true, else "logits".
    """
    path = str(path)
    if logits_key is None:
        logits_key = "probs" if probs else "logits"
    if not os.path.exists(path):
        _fail(path, "no such file")
    if os.path.isdir(path):
        _fail(path, "is a directory, expected a .npz, .npy, .pt or .csv file")
    ext = Path(path).suffix.lower()
    field = logits_key
    if ext == ".npz":
        try:
            f = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            _fail(path, f"not a readable .npz file ({e})")
        if not isinstance(f, np.lib.npyio.NpzFile):
            _fail(path, "is a .npy array saved under a .npz name; rename it to .npy")
        with f:
            z = _npz_field(f, path, logits_key)
            y = _npz_field(f, path, labels_key) if labels_key in f.files else None
    elif ext == ".npy":
        z = _load_npy(path, mmap=True)
        y = None
    elif ext == ".pt":
        z, y = _load_pt(path, logits_key, labels_key)
    elif ext == ".csv":
        z, y = _load_csv(path, labels_key)
        field = "class columns"
    else:
        _fail(path, f"unknown file type '{ext}'; expected .npz, .npy, .pt or .csv")
    if labels_path is not None:
        lp = str(labels_path)
        if not os.path.exists(lp):
            _fail(lp, "no such file")
        y = _load_npy(lp) if lp.endswith(".npy") else _fail(lp, "expected a .npy file of labels")
        ylabel = f"{lp}"
    else:
        ylabel = f"{path}: '{labels_key}'"
    kind = "probs" if probs else "logits"
    scores = check_scores(z, f"{path}: '{field}'", kind=kind)
    labels = None
    if y is not None:
        labels = check_labels(y, scores.shape[0], scores.shape[1], ylabel)
    elif require_labels:
        _fail(path, f"missing labels '{labels_key}'; name them with --labels-key, or give --labels FILE.npy")
    if probs:
        scores = np.log(np.maximum(scores.astype(np.float64), _TINY))
    return Predictions(scores, labels, path, kind)


def read_json(path) -> dict:
    path = str(path)
    if not os.path.exists(path):
        _fail(path, "no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as e:
        _fail(path, f"not valid JSON (line {e.lineno}: {e.msg}); was it truncated?")
    except (OSError, UnicodeDecodeError) as e:
        _fail(path, f"cannot be read ({e})")


# ---------------------------------------------------------------------- writing
def check_writable(path) -> Path:
    """Fail early (before any work) if ``path`` cannot be written."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        _fail(path, "is a directory; give a file name")
    if not parent.exists():
        _fail(path, f"cannot write: directory '{parent}' does not exist")
    if not parent.is_dir():
        _fail(path, f"cannot write: '{parent}' is not a directory")
    if not os.access(parent, os.W_OK):
        _fail(path, f"cannot write: directory '{parent}' is not writable")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path, write):
    p = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, p)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _fail(path, f"cannot write ({e.strerror or e})")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npz(path, **arrays) -> None:
    """np.savez_compressed to a temporary file in the same directory, then rename."""
    _atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
