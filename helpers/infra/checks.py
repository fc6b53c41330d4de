"""Input validation shared by every helper module: clear errors that name the argument."""

from __future__ import annotations

import numpy as np


def as_finite_array(x, name: str, ndim: int | tuple[int, ...] | None = None,
                    dtype=np.float32) -> np.ndarray:
    """Return ``x`` as an array of ``dtype``; raise ValueError if it is empty, has the
    wrong number of dimensions, or holds NaN or inf."""
    arr = np.asarray(x)
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
