"""Checks of a loaded calibrator's fitted state (shapes against n_classes_, finite values)."""

from __future__ import annotations

import numpy as np

from .._validation import InputError


def check_state_array(obj, name: str, shape: tuple, source: str, finite: bool = True) -> np.ndarray:
    """Validate a loaded fitted array: its shape, and that its values are finite."""
    v = getattr(obj, name, None)
    if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
        raise InputError(f"{source}: field 'state.{name}' must be a list of numbers, got {type(v).__name__}")
    if v.shape != shape:
        raise InputError(f"{source}: field 'state.{name}' must have shape {shape} for "
                         f"{obj.n_classes_} classes, got {v.shape}")
    if finite and not np.all(np.isfinite(v)):
        raise InputError(f"{source}: field 'state.{name}' must hold finite values")
    return v


def check_state_classes(obj, source: str) -> int:
    k = getattr(obj, "n_classes_", None)
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise InputError(f"{source}: field 'state.n_classes_' must be an integer >= 2, got {k!r}")
    return k


def check_state_number(obj, name: str, source: str, low: float = -np.inf, high: float = np.inf) -> float:
    v = getattr(obj, name, None)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
        raise InputError(f"{source}: field 'state.{name}' must be a number in [{low}, {high}], got {v!r}")
    return float(v)
