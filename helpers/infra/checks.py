"""Input validation shared by every helper module: clear errors that name the argument."""

from __future__ import annotations

import numpy as np


def as_finite_array(x, name: str, ndim: int | tuple[int, ...] | None = None,
                    dtype=np.float32) -> np.ndarray:
    """Return ``x`` as an array of ``dtype``; raise ValueError if it is empty, has the
    wrong number of dimensions, or holds NaN or inf."""
    try:
        arr = np.asarray(x)
    except ValueError as err:  # a ragged list: NumPy's message does not say which argument
        raise ValueError(f"{name} must be a rectangular array, got a ragged sequence ({err})"
                         ) from None
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions, "
                             f"got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values")
    return arr


def check_positive_array(x, name: str, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``x`` as a float64 array after checking that it is finite and every value > 0."""
    arr = as_finite_array(x, name, ndim=ndim, dtype=np.float64)
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0, got a minimum of {arr.min():.4g}")
    return arr


def check_unit_interval(x: np.ndarray, name: str) -> None:
    """Raise ValueError unless every value of ``x`` lies in [0, 1]."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must lie in [0, 1] for a Bernoulli likelihood, "
                         f"got values in [{lo:.4g}, {hi:.4g}]")


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as int; raise ValueError unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_bool(value, name: str) -> bool:
    """Return ``value`` as bool; raise TypeError unless it is True or False (NumPy's too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_seed(seed, name: str = "seed", allow_none: bool = True):
    """Return ``seed`` as int (or None when allowed); raise unless it is an integer >= 0."""
    if seed is None and allow_none:
        return None
    return check_positive_int(seed, name, minimum=0)


def check_finite(value, name: str) -> float:
    """Return ``value`` as float; raise ValueError unless it is a finite number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


def check_positive(value, name: str) -> float:
    """Return ``value`` as float; raise ValueError unless it is finite and > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def check_range(value, name: str) -> tuple[float, float]:
    """Return ``value`` as ``(low, high)`` floats; raise TypeError unless it is a pair, and
    ValueError unless both are finite numbers with low < high."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a pair (low, high), got {value!r}")
    if len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {len(value)} values: {value!r}")
    lo, hi = (check_finite(v, name) for v in value)
    if not lo < hi:
        raise ValueError(f"{name} must be (low, high) with low < high, got {tuple(value)!r}")
    return lo, hi


def _listed(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def check_same_length(arrays: dict) -> int:
    """Return the common length of the 1-D arrays in ``arrays`` (name -> array; 0-d arrays
    broadcast); raise ValueError naming them all unless every 1-D one has the same length."""
    lengths = {name: len(a) for name, a in arrays.items() if np.ndim(a) > 0}
    if len(set(lengths.values())) > 1:
        got = ", ".join(str(len(a)) if np.ndim(a) > 0 else "scalar" for a in arrays.values())
        raise ValueError(f"{_listed(arrays)} must have the same length, got {got}")
    return max(lengths.values(), default=1)


def check_broadcastable(arrays: dict) -> tuple[int, ...]:
    """Return the shape that the arrays in ``arrays`` (name -> array) broadcast to; raise
    ValueError naming them all, with their shapes, if they do not broadcast."""
    try:
        return np.broadcast_shapes(*(np.shape(a) for a in arrays.values()))
    except ValueError:
        shapes = ", ".join(str(np.shape(a)) for a in arrays.values())
        raise ValueError(f"{_listed(arrays)} must broadcast to one shape (scalars, or arrays "
                         f"of the same length), got shapes {shapes}") from None
