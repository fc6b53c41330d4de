"""Checks of a headline number against its target, used by every notebook.

A correctness check (a shape, an exact value, an invariant) is a plain ``assert``. A headline
number against its target (a published figure, a bound the study argues for) goes through
this module instead: under ``NOTEBOOK_STRICT=1``, which ``make run``, ``make test`` and CI
set, a missed target raises :class:`TargetMissed` and fails the run; in an interactive
session or a plain papermill run it prints a visible warning (which number, its value, the
target) and the notebook goes on, so that every figure is still drawn after a student changes
a setting. Each function returns whether the target was met.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from helpers.infra.config import env_flag


class TargetMissed(AssertionError):
    """A headline number missed its target under ``NOTEBOOK_STRICT=1``."""


class TargetWarning(UserWarning):
    """A headline number missed its target in a non-strict session."""


def strict_mode() -> bool:
    """True when ``NOTEBOOK_STRICT`` is set to a true value (1, true, yes, on)."""
    return env_flag("NOTEBOOK_STRICT")


def _number(value, argument: str) -> float:
    """A real number: Python, NumPy or a 0-d array or tensor; not a bool or a string."""
    if not isinstance(value, (bool, np.bool_, str, bytes)):
        if isinstance(value, numbers.Real):
            return float(value)
        if hasattr(value, "__array__"):
            array = np.asarray(value)
            if array.ndim == 0 and array.dtype.kind in "fiu":
                return float(array)
    raise TypeError(f"{argument} must be a single real number, got {value!r}")


def _report(met: bool, message: str) -> bool:
    if met:
        return True
    if strict_mode():
        raise TargetMissed(message)
    with warnings.catch_warnings():
        warnings.simplefilter("always", TargetWarning)
        warnings.warn(f"TARGET MISSED: {message} (NOTEBOOK_STRICT=1 makes this an error)",
                      TargetWarning, stacklevel=3)
    return False


def _check_name(name, argument: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"{argument} must be a non-empty string, got {name!r}")
    return name


def _check_text(text, argument: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{argument} must be a string (may be empty), got {text!r}")
    return text


def _target(target) -> float:
    target = _number(target, "target")
    if math.isnan(target):
        raise ValueError("target must be a number, got NaN: no value can meet it")
    return target


def _truth(condition) -> bool:
    """A truth value: bool, NumPy bool, or a 0-d boolean array or tensor. A number, None or
    a string is not one (``bool`` would turn them into a silent True or False)."""
    if isinstance(condition, (bool, np.bool_)):
        return bool(condition)
    if hasattr(condition, "__array__") and not isinstance(condition, (str, bytes)):
        array = np.asarray(condition)
        if array.ndim == 0 and array.dtype == bool:
            return bool(array)
    raise TypeError(f"condition must be True or False (a comparison's result), got "
                    f"{condition!r}")


def at_least(name: str, value, target, why: str = "") -> bool:
    """``value >= target``: for a number that should be large (an accuracy, a correlation)."""
    name, value, target = _check_name(name), _number(value, "value"), _target(target)
    why = _check_text(why, "why")
    met = not math.isnan(value) and value >= target
    return _report(met, f"{name} = {value:.6g}, target >= {target:.6g}"
                   + (f" ({why})" if why else ""))


def at_most(name: str, value, target, why: str = "") -> bool:
    """``value <= target``: for a number that should be small (a loss, an error, a distance)."""
    name, value, target = _check_name(name), _number(value, "value"), _target(target)
    why = _check_text(why, "why")
    met = not math.isnan(value) and value <= target
    return _report(met, f"{name} = {value:.6g}, target <= {target:.6g}"
                   + (f" ({why})" if why else ""))


def holds(claim: str, condition, detail: str = "") -> bool:
    """A comparison the study claims (e.g. 'the GAN's distance is below the VAE's'):
    ``condition`` is the comparison's truth value, ``detail`` the numbers behind it."""
    claim, condition = _check_name(claim, "claim"), _truth(condition)
    detail = _check_text(detail, "detail")
    return _report(condition, f"expected {claim}" + (f": {detail}" if detail else ""))


__all__ = ["TargetMissed", "TargetWarning", "at_least", "at_most", "holds", "strict_mode"]
