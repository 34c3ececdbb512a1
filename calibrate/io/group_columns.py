"""Group columns (metadata joined to the predictions by row) for ``--group-by``.

A file of group columns holds one row per data row, in the same order:
  .csv      a header naming every column; values are text (whole numbers and numbers are
            read as such when every value of the column is one)
  .npz      one (n,) array per column (``np.load(allow_pickle=False)``)
  .parquet  read with pandas + pyarrow when both are importable
A CSV DATA file may hold the group columns itself (``read_predictions(skip_columns=...)``
then skips them). Failures are one-line :class:`InputError` messages naming the file and
the column.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from calibrate._core.validation import InputError
from calibrate.io.readers import check_input_file


def parse_group_by(text: str) -> list[str]:
    """'a,b' -> ['a', 'b'] (blank names and repeats refused)."""
    cols = [c.strip() for c in str(text).split(",")]
    if not all(cols):
        raise InputError(f"--group-by: expected COLUMN[,COLUMN...], got {text!r}")
    dup = next((c for c in cols if cols.count(c) > 1), None)
    if dup is not None:
        raise InputError(f"--group-by: column {dup!r} named twice; name each group column once")
    return cols


def _typed(values: list[str]) -> np.ndarray:
    """Text values as int64 when all are whole numbers, float64 when all are numbers, else str."""
    for convert, dtype in ((int, np.int64), (float, np.float64)):
        try:
            return np.array([convert(v) for v in values], dtype=dtype)
        except (ValueError, OverflowError):
            continue
    return np.array(values, dtype=str)


def _csv_columns(path, columns) -> dict:
    try:
        fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed below)
    except OSError as e:
        raise InputError(f"{path}: not a readable CSV file ({e.strerror or e})") from None
    with fh:
        try:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise InputError(f"{path}: no column '{missing[0]}' (--group-by); the header has: "
                                 f"{', '.join(header) or '(nothing)'}")
            idx = [header.index(c) for c in columns]
            out = [[] for _ in columns]
            for line, r in enumerate(reader, start=2):
                if not any(v.strip() for v in r):
                    continue
                if len(r) != len(header):
                    raise InputError(f"{path}: line {line} has {len(r)} fields, the header has {len(header)}; "
                                     "every row needs one value per column")
                for o, j in zip(out, idx):
                    o.append(r[j].strip())
        except (UnicodeDecodeError, csv.Error) as e:
            raise InputError(f"{path}: not a readable CSV file ({e})") from None
    return {c: _typed(o) for c, o in zip(columns, out)}


def _npz_columns(path, columns) -> dict:
    try:
        f = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: not a readable .npz file ({e})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: is a .npy array saved under a .npz name; save the group columns with np.savez")
    with f:
        missing = [c for c in columns if c not in f.files]
        if missing:
            raise InputError(f"{path}: no array '{missing[0]}' (--group-by); the file has: {', '.join(f.files)}")
        out = {}
        for c in columns:
            try:
                a = f[c]
            except ValueError as e:
                raise InputError(f"{path}: array '{c}' cannot be read without pickle ({e}); save it as numbers "
                                 "or fixed-width text (np.array(values, dtype=str))") from None
            if a.ndim != 1:
                raise InputError(f"{path}: array '{c}': expected one value per row, shape (n,), got {a.shape}")
            out[c] = a
    return out


def _parquet_columns(path, columns) -> dict:
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pandas and pyarrow: pip install pandas pyarrow "
                         "(or save the group columns as .csv or .npz)") from None
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises its own error types
        raise InputError(f"{path}: not a readable Parquet file ({e})") from None
    names = [str(c) for c in df.columns]
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputError(f"{path}: no column '{missing[0]}' (--group-by); the file has: {', '.join(names)}")
    out = {}
    for c in columns:
        s = df[c]
        out[c] = s.to_numpy() if s.dtype.kind in "iufb" else s.astype(str).to_numpy().astype(str)
    return out


def read_group_columns(path, columns, n: int) -> dict:
    """{column: (n,) array} of the named group columns of ``path`` (.csv, .npz, .parquet).

    Refused with a one-line message: a missing file or column, a number of rows other
    than n (the rows of the data), an unknown file type, Parquet without pyarrow.
    """
    path = str(path)
    check_input_file(path, "a .csv, .npz or .parquet file of group columns")
    ext = Path(path).suffix.lower()
    if ext == ".csv":
        out = _csv_columns(path, columns)
    elif ext == ".npz":
        out = _npz_columns(path, columns)
    elif ext in (".parquet", ".pq"):
        out = _parquet_columns(path, columns)
    else:
        raise InputError(f"{path}: unknown file type '{ext}' for group columns; expected .csv, .npz or .parquet")
    for c, a in out.items():
        if a.shape[0] != n:
            raise InputError(f"{path}: column '{c}' has {a.shape[0]:,} rows, the data has {n:,}; the group "
                             "columns need one row per data row, in the same order")
    return out
