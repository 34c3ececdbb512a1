"""Declarative schemas for calibrator files: every field, its type, shape and range.

A calibrator class declares what its JSON file may hold::

    class TemperatureScaling(Calibrator):
        param_schema = {"objective": Choice("nll", "ece"), ...}
        state_schema = {"temperature_": Number(gt=0), ...}

``load`` checks the file against them before any attribute is set: unknown fields are
refused, required fields must be present, numbers must be finite (unless declared
otherwise) and in range, arrays must have the declared dtype and shape. Shapes name
dimensions: an int, ``"k"`` (the file's ``n_classes_``), or any other name, bound by the
first array that uses it and checked against every later one in the same record
(``"B+1"`` means one more than ``B``). A class may add dimensions from ``n_classes_``
(``Calibrator._state_dims``) and cross-field rules (``Calibrator._check_state``).

Values are decoded from the file's encoding (``{"__ndarray__": nested lists, "dtype"}``
for arrays, ``{"__float__": "inf"}`` for non-finite numbers) by the schema only: nothing
in the file decides what type is built. Every error is an InputError naming
``FILE: field 'state.maps_[2].x'``, what was found and what was expected.
"""

from __future__ import annotations

import math
import re

import numpy as np

from calibrate._core.validation import InputError

_DIM = re.compile(r"^([A-Za-z_]\w*)(?:\+(\d+))?$")


class SchemaError(InputError):
    pass


class Loc:
    """Where a value sits: the file and the field path, printed as ``FILE: field 'a.b[2]'``."""

    def __init__(self, source: str, path: str = ""):
        self.source, self.path = source, path

    def key(self, k: str) -> Loc:
        return Loc(self.source, f"{self.path}.{k}" if self.path else k)

    def index(self, i: int) -> Loc:
        return Loc(self.source, f"{self.path}[{i}]")

    def __str__(self):
        return f"{self.source}: field '{self.path}'" if self.path else self.source


def _desc(v) -> str:
    if isinstance(v, dict):
        return "an object" if "__ndarray__" not in v else "an array"
    if isinstance(v, list):
        if len(v) <= 4 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return repr(v)
        return f"a list of {len(v)}"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return repr(v[:40])
    if v is None:
        return "null"
    return repr(v)


class Field:
    """One entry of a schema. ``decode(value, where, dims)`` returns the Python value."""

    required = True

    def fail(self, where, found, expected):
        raise SchemaError(f"{where}: expected {expected}, got {found}")

    def decode(self, v, where, dims):  # pragma: no cover - abstract
        raise NotImplementedError

    def optional(self):
        self.required = False
        return self


def _range_text(gt, ge, lt, le):
    parts = []
    if gt is not None:
        parts.append(f"> {gt:g}")
    if ge is not None:
        parts.append(f">= {ge:g}")
    if lt is not None:
        parts.append(f"< {lt:g}")
    if le is not None:
        parts.append(f"<= {le:g}")
    return " and ".join(parts)


def _in_range(x, gt, ge, lt, le):
    return ((gt is None or x > gt) and (ge is None or x >= ge) and (lt is None or x < lt)
            and (le is None or x <= le))


class Number(Field):
    """A float (or, with integer=True, an int). finite=False admits inf and NaN."""

    def __init__(self, *, gt=None, ge=None, lt=None, le=None, finite=True, integer=False, nullable=False):
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        self.finite, self.integer, self.nullable = finite, integer, nullable

    def decode(self, v, where, dims):
        if v is None and self.nullable:
            return None
        what = "an integer" if self.integer else "a number"
        rng = _range_text(self.gt, self.ge, self.lt, self.le)
        expected = f"{what} {rng}".strip()
        if isinstance(v, dict) and set(v) == {"__float__"} and not self.integer:
            try:
                x = float(v["__float__"])
            except (TypeError, ValueError):
                self.fail(where, _desc(v["__float__"]), expected)
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(where, _desc(v), expected)
        else:
            x = v
        if self.integer:
            if isinstance(x, float):
                if not x.is_integer():
                    self.fail(where, _desc(v), expected)
                x = int(x)
        elif not math.isfinite(x):
            if self.finite:
                self.fail(where, _desc(x), f"a finite number {rng}".strip())
            return float(x)
        else:
            x = float(x)
        if not _in_range(x, self.gt, self.ge, self.lt, self.le):
            self.fail(where, _desc(x), expected)
        return x


class Bool(Field):
    """true or false (with nullable=True, also null)."""

    def __init__(self, *, nullable=False):
        self.nullable = nullable

    def decode(self, v, where, dims):
        if v is None and self.nullable:
            return None
        if not isinstance(v, bool):
            self.fail(where, _desc(v), "true, false or null" if self.nullable else "true or false")
        return v


class Choice(Field):
    def __init__(self, *values):
        self.values = values

    def decode(self, v, where, dims):
        if v not in self.values or isinstance(v, bool):
            self.fail(where, _desc(v), "one of " + ", ".join(map(repr, self.values)))
        return v


class Seq(Field):
    """A fixed-length JSON list (a tuple hyperparameter such as bounds)."""

    def __init__(self, item: Field, length: int, *, increasing=False, as_tuple=True, nullable=False):
        self.item, self.length, self.increasing, self.as_tuple = item, length, increasing, as_tuple
        self.nullable = nullable

    def decode(self, v, where, dims):
        if v is None and self.nullable:
            return None
        if not isinstance(v, list) or len(v) != self.length:
            self.fail(where, _desc(v), f"a list of {self.length}")
        out = [self.item.decode(x, where.index(i), dims) for i, x in enumerate(v)]
        if self.increasing and any(b <= a for a, b in zip(out, out[1:])):
            self.fail(where, _desc(v), "increasing values")
        return tuple(out) if self.as_tuple else out


def _dim(spec, dims, where, got):
    """Bind or check one dimension spec against the size ``got``."""
    if isinstance(spec, int):
        return spec
    m = _DIM.match(spec)
    if not m:  # pragma: no cover - a programming error in a schema
        raise ValueError(f"bad dimension spec {spec!r}")
    name, plus = m.group(1), int(m.group(2) or 0)
    if name not in dims:
        dims[name] = got - plus
    return dims[name] + plus


class Array(Field):
    """A numpy array stored as {"__ndarray__": nested lists, "dtype": ...}.

    shape: a tuple of dimension specs (see the module docstring); dtype: "float64" or
    "int64"; gt/ge/lt/le: bounds on every element; finite: no inf/NaN (default);
    order: "increasing" (strictly) or "nondecreasing" along the last axis; min_size.
    """

    def __init__(self, shape, *, dtype="float64", gt=None, ge=None, lt=None, le=None, finite=True,
                 order=None, first=None, last=None, total=None, min_len=None):
        self.shape, self.dtype = tuple(shape), dtype
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        self.finite, self.order, self.first, self.last, self.total = finite, order, first, last, total
        self.min_len = min_len

    def decode(self, v, where, dims):
        want = f"an array of shape ({', '.join(map(str, self.shape))}{',' if len(self.shape) == 1 else ''})"
        if not isinstance(v, dict) or "__ndarray__" not in v:
            self.fail(where, _desc(v), f"{want} stored as {{\"__ndarray__\": [...], \"dtype\": \"{self.dtype}\"}}")
        extra = set(v) - {"__ndarray__", "dtype"}
        if extra:
            self.fail(where, f"the unknown key '{sorted(extra)[0]}'", "only '__ndarray__' and 'dtype'")
        if v.get("dtype", self.dtype) != self.dtype:
            self.fail(where, f"dtype {_desc(v.get('dtype'))}", f"dtype '{self.dtype}'")
        data = v["__ndarray__"]
        flat, shape = _flatten(data, len(self.shape))
        if flat is None:
            self.fail(where, f"{_desc(data)} that is not a regular {len(self.shape)}-d list of numbers", want)
        for spec, got in zip(self.shape, shape):
            expected = _dim(spec, dims, where, got)
            if got != expected:
                bound = ", ".join(f"{n} = {dims[n]}" for n in dims if isinstance(spec, str) and spec.startswith(n))
                self.fail(where, f"shape {tuple(shape)}", f"{want}" + (f" with {bound}" if bound else ""))
        if self.min_len is not None and shape and shape[-1] < self.min_len:
            self.fail(where, f"shape {tuple(shape)}", f"at least {self.min_len} entries")
        if self.dtype == "int64":
            if any(isinstance(x, float) and not x.is_integer() for x in flat):
                self.fail(where, "a non-integer value", "integers")
            arr = np.array(flat, dtype=np.int64).reshape(shape)
        else:
            arr = np.array(flat, dtype=np.float64).reshape(shape)
        if self.finite and arr.size and not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            self.fail(where, f"{arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}", "finite values")
        rng = _range_text(self.gt, self.ge, self.lt, self.le)
        if rng and arr.size:
            ok = np.ones(arr.shape, bool)
            for op, bound in ((np.greater, self.gt), (np.greater_equal, self.ge), (np.less, self.lt),
                              (np.less_equal, self.le)):
                if bound is not None:
                    ok &= op(arr, bound)
            if not ok.all():
                bad = np.argwhere(~ok)[0]
                self.fail(where, f"{arr[tuple(bad)]:g} at index {tuple(int(i) for i in bad)}", f"values {rng}")
        if self.order and arr.shape and arr.shape[-1] > 1:
            d = np.diff(arr, axis=-1)
            bad = d <= 0 if self.order == "increasing" else d < 0
            if bad.any():
                i = tuple(int(j) for j in np.argwhere(bad)[0])
                self.fail(where, f"{arr[i]:g} followed by {arr[i[:-1] + (i[-1] + 1,)]:g} at index {i}",
                          f"{'strictly increasing' if self.order == 'increasing' else 'non-decreasing'} values")
        for label, value, pick in (("first", self.first, 0), ("last", self.last, -1)):
            if value is not None and arr.size and arr.reshape(-1)[pick] != value:
                self.fail(where, f"{label} value {arr.reshape(-1)[pick]:g}", f"{label} value {value:g}")
        if self.total is not None and arr.size and abs(arr.sum() - self.total) > 1e-9 * max(1, arr.size):
            self.fail(where, f"values summing to {arr.sum():.17g}", f"values summing to {self.total:g}")
        return arr


def _flatten(data, ndim):
    """(flat list of numbers, shape) of a regular nested list of depth ndim, else (None, None)."""
    if ndim == 0:
        ok = isinstance(data, (int, float)) and not isinstance(data, bool)
        return ([data], ()) if ok else (None, None)
    level, shape = [data], []
    for _ in range(ndim):
        if not all(isinstance(x, list) for x in level):
            return None, None
        sizes = {len(x) for x in level}
        if len(sizes) > 1:
            return None, None
        shape.append(sizes.pop() if sizes else 0)
        level = [y for x in level for y in x]
    if not all(type(x) in (int, float) for x in level):
        return None, None
    return level, tuple(shape)


class ClassLabels(Field):
    """``classes_``: k distinct labels in increasing order (np.unique's), stored as
    {"__ndarray__": [...], "dtype": "int64" | "float64" | "bool" | "str"}; shape ("k",)."""

    _DTYPES = {"int64": (int,), "float64": (int, float), "bool": (bool,), "str": (str,)}

    def decode(self, v, where, dims):
        want = "k distinct labels stored as {\"__ndarray__\": [...], \"dtype\": \"int64|float64|bool|str\"}"
        if not isinstance(v, dict) or "__ndarray__" not in v or set(v) - {"__ndarray__", "dtype"}:
            self.fail(where, _desc(v), want)
        dtype, data = v.get("dtype"), v["__ndarray__"]
        if dtype not in self._DTYPES:
            self.fail(where, f"dtype {_desc(dtype)}", "dtype 'int64', 'float64', 'bool' or 'str'")
        if not isinstance(data, list):
            self.fail(where, _desc(data), want)
        kinds = self._DTYPES[dtype]
        if any(not isinstance(x, kinds) or (dtype != "bool" and isinstance(x, bool)) for x in data):
            self.fail(where, "a label of another type", f"labels of dtype '{dtype}'")
        if dtype == "int64" and any(not -(2**63) <= x < 2**63 for x in data):
            self.fail(where, "a label outside the int64 range", "int64 labels")
        k = dims.get("k")
        if k is not None and len(data) != k:
            self.fail(where, f"{len(data)} labels", f"{k} (one per class column)")
        arr = np.array(data, dtype={"int64": np.int64, "float64": np.float64, "bool": bool, "str": str}[dtype])
        if dtype == "float64" and not np.isfinite(arr).all():
            self.fail(where, "a non-finite label", "finite labels")
        if len(arr) > 1 and not (arr[1:] > arr[:-1]).all():
            self.fail(where, "labels that are not distinct and increasing", "k distinct labels in sorted order")
        return arr


class Record(Field):
    """A JSON object with exactly the declared fields (optional ones may be absent)."""

    def __init__(self, fields: dict):
        self.fields = fields

    def decode(self, v, where, dims):
        if not isinstance(v, dict):
            self.fail(where, _desc(v), "an object")
        return decode_fields(self.fields, v, where, dict(dims))


class ListOf(Field):
    """A JSON list of items of one schema; length: an int or a dimension spec."""

    def __init__(self, item: Field, length=None, min_len=0):
        self.item, self.length, self.min_len = item, length, min_len

    def decode(self, v, where, dims):
        if not isinstance(v, list):
            self.fail(where, _desc(v), "a list")
        if self.length is not None:
            want = _dim(self.length, dims, where, len(v))
            if len(v) != want:
                self.fail(where, f"a list of {len(v)}", f"a list of {want} (one per fitted map)")
        if len(v) < self.min_len:
            self.fail(where, f"a list of {len(v)}", f"at least {self.min_len} items")
        return [self.item.decode(x, where.index(i), dict(dims)) for i, x in enumerate(v)]


def encode(x):
    """The file encoding of a value (the inverse of the fields' ``decode``): arrays as
    {"__ndarray__": nested lists, "dtype"}, non-finite floats as {"__float__": "inf"}."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "US":  # string class labels (classes_)
            return {"__ndarray__": x.astype(str).tolist(), "dtype": "str"}
        if x.dtype.kind == "O":
            raise InputError("save: labels of Python objects cannot be saved as JSON; use strings or integers")
        if x.dtype.kind in "iub":
            return {"__ndarray__": x.tolist(), "dtype": "int64" if x.dtype.kind != "b" else "bool"}
        return {"__ndarray__": x.astype(np.float64).tolist(), "dtype": "float64"}
    if isinstance(x, dict):
        return {str(k): encode(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [encode(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return {"__float__": repr(x)}
    return x


def check_envelope(d, source: str, *, fmt: str, versions, fields, what: str, writer: str) -> None:
    """Check the outer object of a saved file before its parts are decoded: ``d`` is a dict
    whose "format" is ``fmt``, whose "version" is one of ``versions``, with no key outside
    ``fields``, and whose "params" and "state" (where ``fields`` has them) are objects.
    what: the kind of file ("calibrator"); writer: what writes such files, for the message."""
    if not isinstance(d, dict) or d.get("format") != fmt:
        raise InputError(f"{source}: not a calibrate {what} file (expected \"format\": \"{fmt}\"); "
                         f"give a file written by {writer}")
    if d.get("version") not in versions:
        want = " or ".join(map(str, versions))
        raise InputError(f"{source}: field 'version': expected {want}, got {d.get('version')!r}; "
                         "this file was written by another version of calibrate: fit it again")
    unknown = [k for k in d if k not in fields]
    if unknown:
        raise InputError(f"{source}: field '{unknown[0]}': unknown field (known: {', '.join(fields)}); remove it")


def check_parts(d: dict, source: str, parts=("params", "state")) -> None:
    """Each of ``parts`` of the saved dict ``d`` is a JSON object."""
    for part in parts:
        if not isinstance(d.get(part), dict):
            raise InputError(f"{source}: field '{part}': expected an object, got "
                             f"{type(d.get(part)).__name__ if part in d else 'nothing (missing)'}")


def decode_fields(schema: dict, values: dict, where: str, dims: dict) -> dict:
    """Decode ``values`` against ``schema``: unknown keys refused, required keys present.

    where: a Loc (the file and the path of ``values`` in it), for messages.
    """
    unknown = [key for key in values if key not in schema]
    if unknown:
        known = ", ".join(schema) or "none"
        raise SchemaError(f"{where.key(unknown[0])}: unknown field (known: {known}); this file was not written by "
                          "this version of calibrate, or was edited: remove the field")
    out = {}
    for key, spec in schema.items():
        if key not in values:
            if spec.required:
                raise SchemaError(f"{where.key(key)}: missing; expected {_expect(spec)}; the file is incomplete: "
                                  "fit and save the calibrator again")
            continue
        out[key] = spec.decode(values[key], where.key(key), dims)
    return out


def _expect(spec) -> str:
    if isinstance(spec, Array):
        return f"an array of shape {spec.shape}"
    if isinstance(spec, Number):
        return "an integer" if spec.integer else "a number"
    if isinstance(spec, Record):
        return "an object"
    if isinstance(spec, ListOf):
        return "a list"
    return type(spec).__name__.lower()
