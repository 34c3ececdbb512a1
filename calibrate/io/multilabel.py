"""Reading saved predictions of a multi-label model: (n, L) independent sigmoid outputs.

DATA holds, as for :func:`calibrate.io.readers.read_predictions` (same keys and flags):

  .npz  ``logits`` (n, L) (``probs`` with kind="probs"), ``labels`` (n, L) 0/1, and
        optionally ``label_names`` (L,) strings
  .npy  the (n, L) scores; the labels from a second .npy file (labels_path)
  .pt   a dict of dense tensors with the same keys

Scores are logits z (P(label j on) = sigmoid(z_j)) or probabilities in [0, 1] (each column
on its own: rows need not sum to 1); the caller says which, nothing is guessed. Labels are
scikit-learn's multi-label indicator matrix: (n, L), 0 or 1 (bool, integers or integral
floats). A CSV file is refused (one label column cannot hold L labels). Every failure is
an :class:`InputError` whose one-line message names the file and field.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibrate._core.validation import CalibrationWarning, InputError, check_zero_one, to_numpy
from calibrate.io.readers import (
    _array_keys,
    _fail,
    _load_npy,
    _load_pt,
    _read_labels_file,
    _read_npz,
    check_input_file,
)

KINDS = ("logits", "probs")
CALIBRATOR_FORMAT = "calibrate.multilabel_calibrator"  # the "format" of a MultiLabelCalibrator file
FORMAT_HINT = ("save an .npz with arrays 'logits' (n, L) (or 'probs' with --probs) and 'labels', the (n, L) 0/1 "
               "indicator matrix")


@dataclass
class MultiLabelPredictions:
    """Validated multi-label predictions read from a file.

    scores: (n, L) float64 logits or probabilities, as the file held them (``kind``).
    labels: (n, L) float64 0/1 indicator matrix, or None when the file has none.
    label_names: L names ("0".."L-1" unless the file has ``label_names``).
    """

    scores: np.ndarray
    labels: np.ndarray | None
    path: str
    kind: str
    label_names: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.scores.shape[0]

    @property
    def L(self) -> int:
        return self.scores.shape[1]

    def require_labels(self) -> np.ndarray:
        if self.labels is None:
            raise InputError(f"{self.path}: no labels found; this command needs the (n, L) 0/1 indicator matrix "
                             "'labels' (see --labels-key / --labels)")
        return self.labels


def check_scores_matrix(z, name: str, kind: str) -> np.ndarray:
    """(n, L) float64 scores: finite logits, or probabilities in [0, 1] (kind "probs")."""
    x = to_numpy(z, name)
    if x.dtype.kind not in "fiub":
        raise InputError(f"{name}: expected a float array of {kind}, got dtype {x.dtype}")
    if x.ndim != 2:
        raise InputError(f"{name}: expected (n, L) {kind}, one column per label, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{name}: expected at least one row and one label column, got shape {x.shape}")
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{name}: expected finite {kind}, got {x[i, j]} at row {i}, label {j}; fix or drop that row")
    if kind == "probs":
        out = (x < 0) | (x > 1)
        if out.any():
            i, j = np.argwhere(out)[0]
            raise InputError(f"{name}: expected probabilities in [0, 1], got {x[i, j]:g} at row {i}, label {j}; "
                             "if these are logits, drop --probs")
    return x


def check_indicator_matrix(y, shape: tuple, name: str) -> np.ndarray:
    """(n, L) float64 0/1 from an indicator matrix of the scores' ``shape``."""
    a = np.asarray(y) if not hasattr(y, "detach") else to_numpy(y, name)
    if a.dtype.kind in "OSU":
        raise InputError(f"{name}: expected an (n, L) 0/1 indicator matrix, got dtype {a.dtype}; "
                         "sklearn.preprocessing.MultiLabelBinarizer makes one from label sets")
    if a.ndim == 1:
        raise InputError(f"{name}: a vector of shape {a.shape} (one class index per row); --multilabel needs the "
                         f"(n, L) 0/1 indicator matrix, shape {tuple(shape)}: pass one (MultiLabelBinarizer makes "
                         "it), or drop --multilabel for a single-label model")
    if a.ndim != 2:
        raise InputError(f"{name}: expected an (n, L) 0/1 indicator matrix, got shape {a.shape}")
    if a.shape != tuple(shape):
        raise InputError(f"{name}: shape {a.shape} does not match the scores' shape {tuple(shape)}; the indicator "
                         "matrix needs one row per row and one column per label column of the scores")
    if a.dtype.kind not in "fiub":
        raise InputError(f"{name}: expected an (n, L) 0/1 indicator matrix, got dtype {a.dtype}")
    return check_zero_one(a, name)


def read_multilabel(path, *, kind: str | None = None, logits_key: str | None = None,
                    labels_key: str | None = None, labels_path=None,
                    require_labels: bool = True) -> MultiLabelPredictions:
    """Read and validate saved multi-label predictions (formats: the module docstring).

    kind: "logits" (or None: logits, with a CalibrationWarning when every value lies in
    [0, 1], which logits rarely do) or "probs". logits_key defaults to "probs" for
    probabilities, else "logits"; labels_key to "labels".
    """
    path = str(path)
    if kind == "log_probs":
        _fail(path, "--log-probs does not apply to multi-label scores (each label is its own sigmoid output); "
                    "give logits, or probabilities with --probs")
    if kind is not None and kind not in KINDS:
        _fail(path, f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    key, lkey = _array_keys(kind, logits_key, labels_key)
    check_input_file(path, "a .npz, .npy or .pt file")
    ext = Path(path).suffix.lower()
    names = None
    if ext == ".npz":
        z, y, more = _read_npz(path, key, lkey, ("label_names",))
        names = more.get("label_names")
    elif ext == ".npy":
        z, y = _load_npy(path), None
    elif ext == ".pt":
        z, y = _load_pt(path, key, lkey)
    elif ext == ".csv":
        _fail(path, f"--multilabel reads .npz, .npy or .pt files, not CSV; {FORMAT_HINT}")
    else:
        _fail(path, f"unknown file type '{ext}'; expected .npz, .npy or .pt")
    if labels_path is not None:
        y, ylabel = _read_labels_file(labels_path)
    else:
        ylabel = f"{path}: '{lkey}'"
    scores = check_scores_matrix(z, f"{path}: '{key}'", kind or "logits")
    if kind is None and scores.min() >= 0 and scores.max() <= 1:
        warnings.warn(f"{path}: '{key}': every value lies in [0, 1]: these look like probabilities, not logits; "
                      "say which they are: --probs, or --logits to keep them as logits", CalibrationWarning,
                      stacklevel=2)
    labels = None
    if y is not None:
        labels = check_indicator_matrix(y, scores.shape, ylabel)
    elif require_labels:
        _fail(path, f"missing labels '{lkey}' (the (n, L) 0/1 indicator matrix); name them with --labels-key, "
                    "or give --labels FILE.npy")
    L = scores.shape[1]
    if names is None:
        label_names = [str(j) for j in range(L)]
    else:
        if names.ndim != 1 or names.shape[0] != L:
            _fail(path, f"'label_names': expected {L} names (one per label column), got shape {names.shape}")
        label_names = [str(s) for s in names.tolist()]
    return MultiLabelPredictions(scores, labels, path, kind or "logits", label_names)


def is_multilabel_calibrator(path, peek_bytes: int = 1 << 20) -> bool:
    """True when ``path`` is a JSON file whose "format" is that of MultiLabelCalibrator.save.

    A file up to ``peek_bytes`` is parsed (read, never executed); a larger one (a matrix
    calibrator of many classes can be a GB) is judged by its first ``peek_bytes``, where
    save writes "format" first. Anything unreadable is False, left to the loader's message."""
    import os
    import re

    from calibrate.io.readers import read_json

    if not path or not str(path).lower().endswith(".json") or not os.path.isfile(path):
        return False
    try:
        if os.path.getsize(path) > peek_bytes:
            with open(path, "rb") as fh:
                head = fh.read(peek_bytes)
            return re.match(rb'\s*\{\s*"format"\s*:\s*"' + re.escape(CALIBRATOR_FORMAT.encode()) + rb'"', head) is not None
        d = read_json(path)
    except (InputError, OSError):
        return False
    return isinstance(d, dict) and d.get("format") == CALIBRATOR_FORMAT
