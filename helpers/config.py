"""Paths, fast mode, seeding and log levels shared by all notebooks."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
_FALSE = {"", "0", "false", "no", "off"}


def fast_mode() -> bool:
    """Return True when ``NOTEBOOK_FAST`` is set to a true value (1, true, yes, on)."""
    return os.environ.get("NOTEBOOK_FAST", "").strip().lower() not in _FALSE


def data_dir(*parts: str) -> Path:
    """Return (and create) a folder under ``data/``, or ``$GENERATIVE_DATA_DIR`` if set."""
    root = Path(os.environ.get("GENERATIVE_DATA_DIR", REPO_ROOT / "data"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_dir(*parts: str) -> Path:
    """Return (and create) a folder under ``build/``, or ``$GENERATIVE_BUILD_DIR`` if set."""
    root = Path(os.environ.get("GENERATIVE_BUILD_DIR", REPO_ROOT / "build"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _silenced_stderr_fd():
    """Send file descriptor 2 to /dev/null (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quiet_tensorflow() -> None:
    """Import TensorFlow without its C++ start-up chatter, and hide its later logs up to
    ERROR level (such as the CUDA probe on a machine with no GPU). Call before importing
    keras; Python exceptions are unaffected."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        with _silenced_stderr_fd():
            import tensorflow  # noqa: F401
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and Keras; optionally make TensorFlow ops deterministic."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    import keras

    keras.utils.set_random_seed(int(seed))  # Python, NumPy (legacy global) and backend
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
