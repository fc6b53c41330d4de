"""Paths, fast mode, boolean environment flags (NOTEBOOK_FAST, RETRAIN, MNIST_OFFLINE),
seeding, the TensorFlow backend and quiet logs: the set-up every notebook shares."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]  # helpers/infra/config.py -> the repository
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_BLAS_PINNED_BY_US = False  # set by single_thread_blas


def env_flag(name: str) -> bool:
    """Read the boolean environment variable ``name``: 1, true, yes, on mean True; unset,
    empty, 0, false, no, off mean False (any case); anything else raises ValueError."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name} must be 1/true/yes/on or 0/false/no/off, "
                     f"got {raw!r}")


def fast_mode() -> bool:
    """Return True when ``NOTEBOOK_FAST`` is set to a true value (1, true, yes, on)."""
    return env_flag("NOTEBOOK_FAST")


def retrain_requested(retrain: bool = False) -> bool:
    """True when ``retrain`` is true or ``RETRAIN`` is set in the environment: either one
    forces every cached model (weights in data/models/, GAN checkpoints) to train again."""
    if not isinstance(retrain, (bool, np.bool_)):
        raise TypeError(f"retrain must be True or False, got {retrain!r}")
    return bool(retrain) or env_flag("RETRAIN")


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


METRICS_DIR_VARIABLE = "GENERATIVE_METRICS_DIR"


def metrics_dir() -> Path:
    """Return (and create) the folder a notebook's recorder writes to: build/metrics/, or
    ``$GENERATIVE_METRICS_DIR`` where the runner stages a run's metrics until it succeeds."""
    staged = os.environ.get(METRICS_DIR_VARIABLE)
    if not staged:
        return build_dir("metrics")
    path = Path(staged)
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


def require_tensorflow_backend(module: str) -> None:
    """Raise ImportError, naming ``module``, unless Keras runs on TensorFlow: the models
    train with ``tf.GradientTape`` and ``tf.function``. Set ``KERAS_BACKEND=tensorflow``
    before the first ``import keras``."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(f"{module} needs the TensorFlow backend of Keras, but Keras runs on "
                          f"{backend!r}: set os.environ['KERAS_BACKEND'] = 'tensorflow' before "
                          "the first import of keras (a new kernel is needed once it is imported)")


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
    """Seed Python, NumPy and Keras; with ``deterministic``, make TensorFlow's compiled
    functions give the same bits on every run: deterministic ops, and no memory-optimising
    graph rewrite (see ``set_memory_optimizer``); and run NumPy's and SciPy's BLAS on one
    thread (see ``single_thread_blas``)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or \
            not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer from 0 to 2**32 - 1, got {seed!r}")
    import keras

    keras.utils.set_random_seed(int(seed))  # Python, NumPy (legacy global) and backend
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        set_memory_optimizer(False)
    if deterministic:
        single_thread_blas()


def single_thread_blas() -> None:
    """Run the BLAS behind NumPy and SciPy (OpenBLAS in their wheels) on one thread: the
    libraries already loaded through ``threadpoolctl``, those loaded later through
    ``OPENBLAS_NUM_THREADS``. A sum split between threads can round differently with the
    number of cores; and when another process keeps the second core busy (two notebooks at
    once, ``make test``'s two workers), OpenBLAS's threads wait on each other: small products
    such as a notebook's annealing loop then run several times slower. TensorFlow's own
    thread pool is not touched. An ``OPENBLAS_NUM_THREADS`` set before the first call is left
    as it is."""
    global _BLAS_PINNED_BY_US
    if _BLAS_PINNED_BY_US or "OPENBLAS_NUM_THREADS" not in os.environ:
        from threadpoolctl import threadpool_limits

        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        threadpool_limits(limits=1, user_api="blas")
        _BLAS_PINNED_BY_US = True


def set_memory_optimizer(enabled: bool) -> None:
    """Switch the memory optimiser of TensorFlow's graph optimiser (Grappler) off, or back to
    TensorFlow's default, for every compiled function called afterwards.

    Op determinism does not cover it: to lower peak memory it may replace a sum of gradient
    contributions (an ``AddN`` of three or more tensors that are alive at the peak) by a
    temporary variable that each contribution is added to as soon as it is ready. The order of
    those additions then follows thread timing, and the rounding with it, so the same seed can
    train a different model. ``tf.config.optimizer.set_experimental_options`` has no switch for
    this pass, so the setting goes into the base ``ConfigProto`` of TensorFlow's eager context;
    the empty ``set_experimental_options`` call then drops the cached function-call options,
    which are rebuilt from that base. On CPU the pass does nothing else.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.eager import context

    ctx = context.context()
    base = config_pb2.ConfigProto()
    if ctx._config is not None:
        base.CopyFrom(ctx._config)
    base.graph_options.rewrite_options.memory_optimization = (
        rewriter_config_pb2.RewriterConfig.DEFAULT_MEM_OPT if enabled
        else rewriter_config_pb2.RewriterConfig.NO_MEM_OPT)
    ctx._config = base
    tf.config.optimizer.set_experimental_options({})
